/**
 * The live view: a small HTTP server over one Redis connection, serving a static page
 * (local/web/static, plain HTML/CSS/JS, no build step, no CDN) and its data:
 *
 * - `GET /api/summary` — one snapshot (JSON): recent alerts newest first, the last hour's
 *   severity distribution and top IPs and rules (from the alert list), stream length, lag,
 *   pending, DLQ size;
 * - `GET /api/events` — the same snapshot pushed every interval (Server-Sent Events).
 *
 * One snapshot is computed per interval however many browsers watch, and none while nobody
 * does. Served by `npm start` and by `waf view` (any Redis, e.g. production through a tunnel).
 * Alert fields come from attackers' requests: the page renders them as text only, and the
 * Content-Security-Policy forbids inline script as a second line of defence.
 */

import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { alertListPages, alertListSummary, parseListedAlert } from "../../core/alert/alert-list.ts";
import type { RedisClient } from "../../core/lib/redis.ts";
import { type EventRates, LevelCounts } from "../../core/metrics/level-counts.ts";
import type { StreamNames } from "../../core/stream/keys.ts";
import { shardedStatus } from "../../core/stream/status.ts";
import { type ListedAlertLike, summarise, type WindowSummary } from "./summary.ts";

export interface LiveViewOptions {
  redis: RedisClient;
  /** Shown on the page; pass it with the password masked. */
  redisLabel: string;
  names: StreamNames;
  alertListKey: string;
  /** Default 127.0.0.1: the page shows attack data and has no login. */
  host?: string;
  /** 0 = any free port. Default 0. */
  port?: number;
  /** How often the page is updated. Default 2000 ms. */
  intervalMs?: number;
  /** Recent alerts shown. Default 50. */
  recent?: number;
  /** The summary window. Default 3600 s. */
  windowSeconds?: number;
  /** Most alerts read for the summary. Default 10,000 (ALERT_LIST_MAX's default). */
  maxScan?: number;
}

export interface Snapshot {
  generatedAt: number;
  intervalMs: number;
  redis: { label: string; ok: boolean; error?: string };
  stream: {
    key: string;
    length: number;
    groupExists: boolean;
    lag: number | null;
    pending: number;
    consumers: number;
    /** Entries acknowledged per second since the previous snapshot. */
    donePerS: number | null;
    /** Each shard (one unless STREAM_SHARDS > 1); the figures above are totals. */
    shards: Array<{
      key: string;
      length: number;
      lag: number | null;
      pending: number;
      dlqLength: number;
    }>;
  } | null;
  dlq: { key: string; length: number } | null;
  /** Every scored event (not only alerts), from the scorer's per-minute counts. */
  scored: EventRates | null;
  alerts: { key: string; total: number; recent: ListedAlertLike[] } | null;
  lastHour: (WindowSummary & { scanned: number; truncated: boolean }) | null;
}

export interface LiveView {
  url: string;
  port: number;
  /** The current snapshot (computed now unless a fresh one exists). */
  snapshot(): Promise<Snapshot>;
  close(): Promise<void>;
}

const STATIC_DIR = join(dirname(fileURLToPath(import.meta.url)), "static");
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
  "/favicon.svg": { file: "favicon.svg", type: "image/svg+xml" },
};

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
};

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || host.startsWith("127.");
}

/** Host header name without the port. */
function hostName(header: string | undefined): string {
  if (!header) return "";
  if (header.startsWith("[")) return header.slice(0, header.indexOf("]") + 1).toLowerCase();
  return (header.split(":")[0] ?? "").toLowerCase();
}

/** Starts the server; rejects with the listen error (EADDRINUSE…) when the port is taken. */
export async function startLiveView(o: LiveViewOptions): Promise<LiveView> {
  const host = o.host ?? "127.0.0.1";
  const intervalMs = o.intervalMs ?? 2_000;
  const recentCount = o.recent ?? 50;
  const windowSeconds = o.windowSeconds ?? 3_600;
  const maxScan = o.maxScan ?? 10_000;
  const files = new Map(
    Object.entries(FILES).map(([path, f]) => [
      path,
      { body: readFileSync(join(STATIC_DIR, f.file)), type: f.type },
    ]),
  );

  let last: Snapshot | undefined;
  let lastDone: { at: number; done: number } | undefined;
  let inFlight: Promise<Snapshot> | undefined;

  const counts = new LevelCounts(o.redis, o.alertListKey);
  const compute = async (): Promise<Snapshot> => {
    const base = {
      generatedAt: Date.now(),
      intervalMs,
      redis: { label: o.redisLabel, ok: true } as Snapshot["redis"],
    };
    try {
      const [time, micros] = await o.redis.time();
      const now = Number(time);
      const scored = await counts.window(
        now * 1000 + Math.floor(Number(micros) / 1000),
        windowSeconds,
      );
      const status = await shardedStatus(o.redis, o.names, { withConsumers: true });
      const { length: total } = await alertListSummary(o.redis, o.alertListKey);
      // The list is newest first by listed_at: read pages until the window is passed.
      const alerts: ListedAlertLike[] = [];
      let scanned = 0;
      let passed = false;
      scan: for await (const raw of alertListPages(o.redis, o.alertListKey, maxScan)) {
        for (const r of raw) {
          scanned++;
          const a = parseListedAlert(r) as ListedAlertLike | undefined;
          if (!a) continue;
          alerts.push(a);
          if (alerts.length >= recentCount && Number(a.listed_at) < now - windowSeconds) {
            passed = true;
            break scan;
          }
        }
      }
      const done = status.entriesRead - status.pending;
      const nowMs = Date.now();
      const donePerS =
        lastDone && nowMs > lastDone.at
          ? Math.max(0, ((done - lastDone.done) * 1000) / (nowMs - lastDone.at))
          : null;
      lastDone = { at: nowMs, done };
      return {
        ...base,
        stream: {
          key: o.names.stream,
          length: status.length,
          groupExists: status.groupExists,
          lag: status.lag ?? null,
          pending: status.pending,
          consumers: status.consumers.length,
          donePerS,
          shards: status.shards.map((x) => ({
            key: x.stream,
            length: x.length,
            lag: x.lag ?? null,
            pending: x.pending,
            dlqLength: x.dlqLength,
          })),
        },
        dlq: { key: o.names.dlq, length: status.dlqLength },
        scored,
        alerts: { key: o.alertListKey, total, recent: alerts.slice(0, recentCount) },
        lastHour: {
          ...summarise(alerts, now, windowSeconds),
          scanned,
          truncated: !passed && scanned < total,
        },
      };
    } catch (err) {
      // Keep showing the last data, marked stale by the error.
      return {
        ...(last ?? { stream: null, dlq: null, scored: null, alerts: null, lastHour: null }),
        ...base,
        redis: { label: o.redisLabel, ok: false, error: (err as Error).message },
      };
    }
  };

  const snapshot = (): Promise<Snapshot> => {
    if (last && Date.now() - last.generatedAt < intervalMs / 2) return Promise.resolve(last);
    inFlight ??= compute().then((s) => {
      last = s;
      inFlight = undefined;
      return s;
    });
    return inFlight;
  };

  const clients = new Set<ServerResponse>();
  let ticker: NodeJS.Timeout | undefined;
  const broadcast = async () => {
    const s = await snapshot();
    const frame = `data: ${JSON.stringify(s)}\n\n`;
    for (const res of clients) res.write(frame);
  };
  const ensureTicker = () => {
    if (clients.size > 0 && !ticker) ticker = setInterval(() => void broadcast(), intervalMs);
    if (clients.size === 0 && ticker) {
      clearInterval(ticker);
      ticker = undefined;
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    // DNS rebinding: a page on another origin must not reach a loopback-only view by name.
    if (isLoopback(host) && !isLoopback(hostName(req.headers.host))) {
      res.writeHead(421, { "content-type": "text/plain" }).end("misdirected request\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const path = new URL(req.url ?? "/", "http://view").pathname;
    const file = files.get(path);
    if (file) {
      res.writeHead(200, { ...SECURITY_HEADERS, "content-type": file.type });
      res.end(req.method === "HEAD" ? undefined : file.body);
      return;
    }
    if (path === "/api/summary") {
      const s = await snapshot();
      res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "application/json" });
      res.end(JSON.stringify(s));
      return;
    }
    if (path === "/api/events") {
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        "content-type": "text/event-stream",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      res.write("retry: 3000\n\n");
      clients.add(res);
      ensureTicker();
      res.on("close", () => {
        clients.delete(res);
        ensureTicker();
      });
      const s = await snapshot();
      if (!res.writableEnded) res.write(`data: ${JSON.stringify(s)}\n\n`);
      return;
    }
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`error: ${(err as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  return {
    url: `http://${shownHost}:${port}/`,
    port,
    snapshot,
    close: async () => {
      if (ticker) clearInterval(ticker);
      ticker = undefined;
      for (const res of clients) res.end();
      clients.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
