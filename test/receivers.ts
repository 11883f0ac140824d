/**
 * Real local HTTP receivers (node:http on free loopback ports) standing in for Slack,
 * PagerDuty and webhook endpoints in integration tests: they record every request (method,
 * path, headers, raw body) and answer as told: 2xx, an error status, or never (hang).
 */
import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  method: string;
  /** Path and query as received. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, exactly as sent. */
  body: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: unknown;
}

/** What a receiver answers: a status (and body), or `"hang"`: never answer. */
export type ReceiverBehaviour =
  | { status: number; body?: string; headers?: Record<string, string> }
  | "hang";

export interface Receiver {
  /** `http://127.0.0.1:PORT<path>`; the path is what the channel is configured with. */
  url: string;
  readonly requests: ReceivedRequest[];
  /** Requests whose answer is still pending (hanging). */
  readonly hanging: number;
  /** Changes what later requests get. */
  answer(
    behaviour: ReceiverBehaviour | ((req: ReceivedRequest, n: number) => ReceiverBehaviour),
  ): void;
  /** Drops the connections of requests left hanging (the client sees a reset). */
  release(): void;
  /** Resolves once at least `n` requests arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

/**
 * Starts a receiver.
 * @example const slack = await startReceiver({ path: "/services/T0/B0/secret" });
 */
export async function startReceiver(
  opts: {
    path?: string;
    behaviour?: ReceiverBehaviour | ((req: ReceivedRequest, n: number) => ReceiverBehaviour);
  } = {},
): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const pending = new Set<ServerResponse>();
  let behaviour = opts.behaviour ?? { status: 200, body: "ok" };
  const waiters = new Set<() => void>();

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const received: ReceivedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: req.headers,
        body,
        json,
      };
      requests.push(received);
      for (const w of waiters) w();
      const b = typeof behaviour === "function" ? behaviour(received, requests.length) : behaviour;
      if (b === "hang") {
        pending.add(res);
        res.on("close", () => pending.delete(res));
        return;
      }
      res.writeHead(b.status, { "content-type": "text/plain", ...b.headers });
      res.end(b.body ?? "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}${opts.path ?? "/"}`,
    requests,
    get hanging() {
      return pending.size;
    },
    answer(b) {
      behaviour = b;
    },
    release() {
      for (const res of pending) res.socket?.destroy();
      pending.clear();
    },
    waitFor(n, timeoutMs = 15_000) {
      if (requests.length >= n) return Promise.resolve(requests);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver got ${requests.length} requests, wanted ${n}`));
        }, timeoutMs);
        const check = () => {
          if (requests.length < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(requests);
        };
        waiters.add(check);
      });
    },
    async close() {
      for (const res of pending) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
