/**
 * Row 6 of the hardening issue: `/healthz` tells an operator what they need and nothing else —
 * no error text (errors carry URLs, URLs carry passwords) — and answers 200 while the reader
 * runs, Redis or InfluxDB down or not (replacing tasks cannot fix a dependency outage).
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../core/config.ts";
import { streamNames } from "../../core/stream/keys.ts";
import { type RunningService, startRedis } from "../../local/services.ts";
import { startHealthServer } from "./health.ts";

const PASSWORD = "s3cret-health-pw";
let service: RunningService;
let redis: Redis;

beforeAll(async () => {
  service = await startRedis({ password: PASSWORD });
  redis = new Redis(service.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false });
  redis.on("error", () => undefined);
});
afterAll(async () => {
  redis.disconnect();
  await service?.stop();
});

const stats = (running: boolean) => () => ({
  read: 0,
  acked: 0,
  deadLettered: 0,
  retried: 0,
  claimed: 0,
  reapedConsumers: 0,
  invocations: 0,
  invocationErrors: 0,
  inFlight: 0,
  scheduledRetries: 0,
  paused: false,
  running,
});

describe("GET /healthz", () => {
  it("answers 200 with Redis and InfluxDB down, saying so without any error text, URL or password", async () => {
    const health = await startHealthServer({
      port: 0,
      redis,
      names: streamNames(loadConfig({ STREAM_KEY: "s", DLQ_STREAM_KEY: "s:dlq" })),
      // A password in the URL, and nothing listening: the fetch error would quote the URL.
      influxUrl: "http://admin:influx-pw-123@127.0.0.1:9/",
      readerStats: stats(true),
    });
    try {
      await service.down();
      const res = await fetch(`http://127.0.0.1:${health.port}/healthz`);
      const text = await res.text();
      expect(res.status).toBe(200);
      expect(JSON.parse(text)).toMatchObject({
        status: "degraded",
        reader: { running: true },
        redis: { ok: false },
        influxdb: { ok: false },
      });
      for (const leak of [
        PASSWORD,
        "influx-pw-123",
        "admin",
        "127.0.0.1",
        "ECONNREFUSED",
        "error",
      ]) {
        expect(text).not.toContain(leak);
      }
    } finally {
      health.server.close();
      await service.up();
    }
  });

  it("answers 503 once the reader loop stopped", async () => {
    const health = await startHealthServer({
      port: 0,
      redis,
      names: streamNames(loadConfig({ STREAM_KEY: "s", DLQ_STREAM_KEY: "s:dlq" })),
      readerStats: stats(false),
    });
    try {
      const res = await fetch(`http://127.0.0.1:${health.port}/healthz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: "unhealthy" });
    } finally {
      health.server.close();
    }
  });
});
