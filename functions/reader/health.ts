/**
 * `GET /healthz` on HEALTH_PORT (127.0.0.1): the ECS container health check. 200 while the
 * reader's loop runs, 503 once it stopped — the health of this process, nothing else: during a
 * Redis or InfluxDB outage replacing reader tasks fixes nothing (the reader backs off and
 * catches up by itself), so those are reported in the body (and alarmed on through the
 * gauges), never a reason for 503. The body holds what an operator needs — running, in
 * flight, paused, whether Redis and InfluxDB answer, lag, pending, DLQ length — and no error
 * text: errors can carry URLs, and URLs can carry passwords.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { RedisClient } from "../../core/lib/redis.ts";
import type { StreamNames } from "../../core/stream/keys.ts";
import type { ReaderStats } from "../../core/stream/reader.ts";
import { shardedStatus } from "../../core/stream/status.ts";

export interface HealthOptions {
  port: number;
  redis: RedisClient;
  names: StreamNames;
  /** InfluxDB base URL to ping; omitted when the reader is not told where it is. */
  influxUrl?: string;
  /** Default 127.0.0.1: the ECS health check runs inside the container. */
  host?: string;
  readerStats: () => ReaderStats & { running: boolean };
}

/** `<url>/ping` without the URL's credentials (fetch refuses URLs that carry them). */
function influxPing(url: string): URL {
  const u = new URL("/ping", url);
  u.username = "";
  u.password = "";
  return u;
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => {
        timer = setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export async function startHealthServer(
  o: HealthOptions,
): Promise<{ server: Server; port: number }> {
  const server = createServer(async (req, res) => {
    if (req.method !== "GET" || (req.url !== "/healthz" && req.url !== "/health")) {
      res.writeHead(404).end();
      return;
    }
    const stats = o.readerStats();
    let redis: { ok: boolean } = { ok: true };
    let stream: Awaited<ReturnType<typeof shardedStatus>> | undefined;
    try {
      stream = await withTimeout(shardedStatus(o.redis, o.names), 2000);
    } catch {
      redis = { ok: false };
    }
    let influx: { ok: boolean; status?: number } | undefined;
    if (o.influxUrl) {
      try {
        const res = await fetch(influxPing(o.influxUrl), { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        influx = { ok: res.status >= 200 && res.status < 300, status: res.status };
      } catch {
        influx = { ok: false };
      }
    }
    const healthy = stats.running;
    const body = {
      status: !healthy ? "unhealthy" : redis.ok && influx?.ok !== false ? "ok" : "degraded",
      reader: { running: stats.running, inFlight: stats.inFlight, paused: stats.paused },
      redis,
      influxdb: influx ?? null,
      stream: stream && {
        length: stream.length,
        lag: stream.lag ?? null,
        pending: stream.pending,
        dlqLength: stream.dlqLength,
      },
    };
    res.writeHead(healthy ? 200 : 503, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host ?? "127.0.0.1", () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
