/**
 * The reader under operations an ECS task lives through (reference §5): SIGTERM while batches are in
 * flight (twice, as npm and process managers do), InfluxDB down for a while, Redis restarted.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { streamStatus } from "../core/stream/status.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { envelope } from "./fixtures/records.ts";
import { victoriaSampleCount } from "./readback.ts";
import { until } from "./wait.ts";

const KEYS = { stream: "waf-realtime", group: "realtime-processor", dlq: "waf-realtime:dlq" };
const quiet = { LOG_LEVEL: "warn", POWERTOOLS_METRICS_DISABLED: "true" };

async function send(redis: Redis, n: number, prefix: string, anomaly = 10): Promise<void> {
  const p = redis.pipeline();
  for (let i = 0; i < n; i++) {
    p.xadd(
      KEYS.stream,
      "*",
      "event",
      JSON.stringify(envelope({ id: `${prefix}-${i}`, anomaly, ip: `192.0.2.${i % 250}` })),
    );
  }
  await p.exec();
}

beforeAll(() => {
  execFileSync(process.execPath, ["scripts/build.mjs", "reader"], {
    cwd: join(import.meta.dirname, ".."),
    stdio: "ignore",
  });
});

describe("reader resilience", () => {
  let stack: Stack | undefined;
  let redis: Redis | undefined;
  afterEach(async () => {
    await redis?.quit().catch(() => undefined);
    await stack?.stop();
    stack = undefined;
    redis = undefined;
  });

  it("on SIGTERM (sent twice) finishes and acknowledges in-flight batches, then exits 0", async () => {
    stack = await startStack({
      logDir: mkdtempSync(join(tmpdir(), "waf-term-")),
      readerBundle: true,
      env: { ...quiet, BATCH_SIZE: "10", MAX_IN_FLIGHT: "2", LOCAL_CHAOS_DELAY_MS: "1500" },
    });
    redis = new Redis(stack.redisUrl);
    await send(redis, 60, "term");
    await until(
      "batches in flight",
      async () => (await streamStatus(redis as Redis, KEYS)).pending > 0,
    );
    const reader = stack.reader();
    const exited = new Promise<number | null>((r) => reader.once("exit", (code) => r(code)));
    reader.kill("SIGTERM");
    setTimeout(() => reader.kill("SIGTERM"), 100);
    expect(await exited).toBe(0);
    const after = await streamStatus(redis, KEYS);
    expect(after.pending).toBe(0);
    expect(after.entriesRead).toBeGreaterThan(0);
    // A new reader takes the rest: every record ends as exactly one point.
    await stack.startReader();
    await until("the rest", async () => {
      const s = await streamStatus(redis as Redis, KEYS);
      return s.lag === 0 && s.pending === 0;
    });
    await until(
      "60 points",
      async () => (await victoriaSampleCount(stack?.influxUrl as string)) >= 60,
    );
    expect(await victoriaSampleCount(stack.influxUrl)).toBe(60);
  });

  it("keeps records pending while InfluxDB is down, reports it in /healthz, and catches up by itself", async () => {
    stack = await startStack({
      logDir: mkdtempSync(join(tmpdir(), "waf-influx-down-")),
      readerBundle: true,
      env: { ...quiet, MAX_RETRIES: "2" },
    });
    redis = new Redis(stack.redisUrl);
    await stack.services.influx?.down();
    await send(redis, 30, "down");
    await until(
      "the records to be read",
      async () => (await streamStatus(redis as Redis, KEYS)).entriesRead >= 30,
    );
    // Well past MAX_RETRIES worth of retries: still pending, nothing acknowledged or dead-lettered.
    await new Promise((r) => setTimeout(r, 3000));
    const during = await streamStatus(redis, KEYS);
    expect(during.pending).toBe(30);
    expect(during.dlqLength).toBe(0);
    const health = await fetch(stack.healthUrl() as string);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ influxdb: { ok: false }, stream: { pending: 30 } });

    await stack.services.influx?.up();
    await until(
      "every record acknowledged",
      async () => (await streamStatus(redis as Redis, KEYS)).pending === 0,
      60_000,
    );
    await until(
      "30 points",
      async () => (await victoriaSampleCount(stack?.influxUrl as string)) >= 30,
    );
    expect(await victoriaSampleCount(stack.influxUrl)).toBe(30);
    expect((await streamStatus(redis, KEYS)).dlqLength).toBe(0);
  });

  it("survives a Redis restart (an empty server): recreates its group and processes new records", async () => {
    stack = await startStack({
      logDir: mkdtempSync(join(tmpdir(), "waf-redis-restart-")),
      readerBundle: true,
      env: quiet,
    });
    redis = new Redis(stack.redisUrl);
    await send(redis, 5, "before", 65);
    await until("the first alerts", async () => (await (redis as Redis).llen("waf-alerts")) === 5);
    await stack.services.redis?.restart();
    await send(redis, 7, "after", 65);
    await until(
      "the alerts after the restart",
      async () => (await (redis as Redis).llen("waf-alerts")) === 7,
      60_000,
    );
    const health = await fetch(stack.healthUrl() as string);
    expect(health.status).toBe(200);
    expect(stack.reader().exitCode).toBeNull();
  });
});
