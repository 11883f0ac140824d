/** The scorer's per-minute counts against a real Redis. */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningService, startRedis } from "../../local/services.ts";
import { LevelCounts } from "./level-counts.ts";

let service: RunningService;
let redis: Redis;
beforeAll(async () => {
  service = await startRedis();
  redis = new Redis(service.url);
});
afterAll(async () => {
  await redis?.quit();
  await service?.stop();
});

describe("LevelCounts", () => {
  it("sums the minutes of the window by level and gives a rate over the last minute and a bit", async () => {
    const key = `test:${randomUUID()}`;
    const counts = new LevelCounts(redis, key);
    // Whole minutes around now (the keys expire two hours after their minute).
    const t0 = Math.floor(Date.now() / 60_000) * 60_000;
    await counts.add({ critical: 1, high: 0, medium: 2, low: 7 }, t0 - 90 * 60_000); // before the hour
    await counts.add({ critical: 2, high: 1, medium: 0, low: 3 }, t0 - 30 * 60_000);
    await counts.add({ critical: 0, high: 0, medium: 0, low: 60 }, t0 - 60_000);
    await counts.add({ critical: 1, high: 0, medium: 0, low: 29 }, t0 + 30_000);
    const w = await counts.window(t0 + 30_000);
    expect(w.byLevel).toEqual({ critical: 3, high: 1, medium: 0, low: 92 });
    expect(w.events).toBe(96);
    // 60 in the last full minute + 30 in the 30 s of this one.
    expect(w.perSecond).toBeCloseTo(90 / 90);
    const ttl = await redis.ttl(`${key}:stats:${Math.floor((t0 + 30_000) / 60_000)}`);
    expect(ttl).toBeGreaterThan(0);
  });

  it("writes nothing for an empty batch", async () => {
    const key = `test:${randomUUID()}`;
    await new LevelCounts(redis, key).add({ critical: 0, high: 0, medium: 0, low: 0 }, Date.now());
    expect(await redis.keys(`${key}:*`)).toEqual([]);
  });
});
