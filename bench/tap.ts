/**
 * A recording HTTP proxy in front of VictoriaMetrics: it forwards every request unchanged and,
 * while armed, notes for each line of a successful `/api/v2/write` the moment the database
 * answered 2xx — the moment the point was accepted (reference §5: what the scorer waits for before
 * reporting a record done). Lines are keyed by their timestamp (the last field of a line),
 * which the benchmark can compute for every record it sent.
 */
import { createServer, type IncomingMessage, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";

export interface Tap {
  url: string;
  /** Starts recording (clears what was recorded). */
  arm(): void;
  disarm(): void;
  /** Point timestamp (ns, as text) → epoch ms (fractional) of its first 2xx answer. */
  readonly accepted: Map<string, number>;
  close(): Promise<void>;
}

/** Wall-clock milliseconds with sub-millisecond resolution. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export async function startTap(targetUrl: string): Promise<Tap> {
  const target = new URL(targetUrl);
  const accepted = new Map<string, number>();
  let armed = false;

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const headers = { ...req.headers, host: target.host, "content-length": String(body.length) };
      const upstream = request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers,
        },
        (up) => {
          const answeredAt = nowMs();
          const status = up.statusCode ?? 502;
          if (armed && status >= 200 && status < 300 && req.url?.startsWith("/api/v2/write")) {
            const gzip = /gzip/i.test(String(req.headers["content-encoding"] ?? ""));
            const text = (gzip ? gunzipSync(body) : body).toString("utf8");
            for (const line of text.split("\n")) {
              const at = line.lastIndexOf(" ");
              if (at === -1) continue;
              const ts = line.slice(at + 1).trim();
              if (!accepted.has(ts)) accepted.set(ts, answeredAt);
            }
          }
          res.writeHead(status, up.headers);
          up.pipe(res);
        },
      );
      upstream.on("error", (err) => {
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
        res.end(`tap: ${err.message}`);
      });
      upstream.end(body);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    accepted,
    arm() {
      accepted.clear();
      armed = true;
    },
    disarm() {
      armed = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
