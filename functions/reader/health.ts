/**
 * `GET /healthz` on HEALTH_PORT: the ECS container health check. 200 while the reader runs and
 * Redis answers; 503 otherwise. The body says why, with lag, pending and DLQ figures, and
 * whether InfluxDB answers its `/ping` — reported, never a reason for 503: replacing reader
 * tasks cannot fix a database outage (the reader backs off by itself meanwhile).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Redis } from "ioredis";
import type { StreamNames } from "../../core/stream/keys.ts";
import type { ReaderStats } from "../../core/stream/reader.ts";
import { streamStatus } from "../../core/stream/status.ts";

export interface HealthOptions {
  port: number;
  redis: Redis;
  names: StreamNames;
  /** InfluxDB base URL to ping; omitted when the reader is not told where it is. */
  influxUrl?: string;
  readerStats: () => ReaderStats & { running: boolean };
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
    let redis: { ok: boolean; error?: string } = { ok: true };
    let stream: Awaited<ReturnType<typeof streamStatus>> | undefined;
    try {
      stream = await withTimeout(streamStatus(o.redis, o.names), 2000);
    } catch (err) {
      redis = { ok: false, error: (err as Error).message };
    }
    let influx: { ok: boolean; status?: number; error?: string } | undefined;
    if (o.influxUrl) {
      try {
        const res = await fetch(new URL("/ping", o.influxUrl), {
          signal: AbortSignal.timeout(2000),
        });
        await res.arrayBuffer();
        influx = { ok: res.status >= 200 && res.status < 300, status: res.status };
      } catch (err) {
        influx = { ok: false, error: (err as Error).message };
      }
    }
    const healthy = stats.running && redis.ok;
    const body = {
      status: healthy ? "ok" : "unhealthy",
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
    server.listen(o.port, "0.0.0.0", () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
