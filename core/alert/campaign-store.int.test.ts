/**
 * The campaign store against a REAL Redis: the Lua script decides exactly as the pure rule
 * (core/alert/campaign.ts) does, a window fires once across concurrent scorer instances, a
 * redelivery raises it again, and the state is bounded and expires. Unique keys per test.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningService, startRedis } from "../../local/services.ts";
import {
  applyCampaignEvents,
  type CampaignEvent,
  type CampaignFigures,
  type CampaignSettings,
  emptyCampaignState,
} from "./campaign.ts";
import { CampaignStore } from "./campaign-store.ts";
import { alertKeys } from "./keys.ts";

let service: RunningService;
let redis: Redis;
let other: Redis;

beforeAll(async () => {
  service = await startRedis();
  redis = new Redis(service.url);
  other = new Redis(service.url);
});

afterAll(async () => {
  redis?.disconnect();
  other?.disconnect();
  await service?.stop();
});

const SETTINGS: CampaignSettings = { windowSeconds: 300, minEvents: 5 };
const prefix = () => alertKeys(`test:alerts:${randomUUID()}`).campaignPrefix;

let n = 0;
const ev = (over: Partial<CampaignEvent> = {}): CampaignEvent => ({
  txId: `tx-${++n}`,
  clientIp: "203.0.113.9",
  severity: 30,
  anomalyScore: 5,
  blocked: true,
  categories: ["942"],
  rules: ["942100"],
  ...over,
});

const group = (events: CampaignEvent[]) => ({
  clientKey: "203.0.113.9",
  windowStart: 1_700_000_100,
  events,
});

const comparable = (f: CampaignFigures) => ({
  events: f.events,
  blocked: f.blocked,
  maxSeverity: f.maxSeverity,
  maxAnomaly: f.maxAnomaly,
  clientIp: f.clientIp,
  categories: f.categories,
  ruleCounts: Object.fromEntries(f.ruleCounts),
});

describe("CampaignStore", () => {
  it("decides like the pure rule, batch by batch, figures included (property)", async () => {
    const event = fc.record({
      tx: fc.integer({ min: 0, max: 12 }),
      severity: fc.integer({ min: -50, max: 200 }),
      anomaly: fc.integer({ min: 0, max: 60 }),
      blocked: fc.boolean(),
      categories: fc.array(fc.constantFrom("942", "941", "932", "930", "920", "913", "951"), {
        maxLength: 3,
      }),
      rules: fc.array(fc.constantFrom("942100", "941100", "932100", "920350", "200002"), {
        maxLength: 4,
      }),
      ip: fc.constantFrom("203.0.113.9", "::ffff:203.0.113.9"),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(event, { maxLength: 4 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 8 }),
        async (batches, minEvents) => {
          const settings = { ...SETTINGS, minEvents };
          const store = new CampaignStore(redis, { prefix: prefix(), settings });
          const state = emptyCampaignState();
          for (const batch of batches) {
            const events = batch.map((e) =>
              ev({
                txId: `t${e.tx}`,
                severity: e.severity,
                anomalyScore: e.anomaly,
                blocked: e.blocked,
                categories: [...new Set(e.categories)],
                rules: [...new Set(e.rules)],
                clientIp: e.ip,
              }),
            );
            const pure = applyCampaignEvents(state, events, settings);
            const raised = await store.apply([group(events)]);
            expect(raised.length).toBe(pure.raise ? 1 : 0);
            if (pure.raise)
              expect(comparable(raised[0]?.figures as CampaignFigures)).toEqual(comparable(state));
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("fires once for one client however two scorer instances interleave its events", async () => {
    const p = prefix();
    const a = new CampaignStore(redis, { prefix: p, settings: { ...SETTINGS, minEvents: 20 } });
    const b = new CampaignStore(other, { prefix: p, settings: { ...SETTINGS, minEvents: 20 } });
    const events = Array.from({ length: 200 }, () => ev());
    const calls = events.map((e, i) => (i % 2 === 0 ? a : b).apply([group([e])]));
    const raised = (await Promise.all(calls)).flat();
    expect(raised).toHaveLength(1);
    expect(raised[0]?.figures.events).toBe(20);
  });

  it("raises again when a counted transaction is redelivered, with the figures it fired with", async () => {
    const store = new CampaignStore(redis, { prefix: prefix(), settings: SETTINGS });
    const events = Array.from({ length: 5 }, () => ev());
    const [first] = await store.apply([group(events)]);
    expect(first?.figures.events).toBe(5);
    expect(await store.apply([group([ev(), ev()])])).toEqual([]);
    const again = await store.apply([group([events[2] as CampaignEvent])]);
    expect(again).toHaveLength(1);
    expect(comparable(again[0]?.figures as CampaignFigures)).toEqual(
      comparable(first?.figures as CampaignFigures),
    );
  });

  it("keeps one hash per client and window in one cluster slot, bounded, expiring", async () => {
    const p = prefix();
    const store = new CampaignStore(redis, { prefix: p, settings: SETTINGS, ttlSeconds: 1000 });
    await store.apply([group(Array.from({ length: 50 }, () => ev()))]);
    const key = store.stateKey("203.0.113.9", 1_700_000_100);
    expect(key).toBe(`${p}:{203.0.113.9:1700000100}`);
    expect(await redis.keys(`${p}*`)).toEqual([key]);
    const fields = Object.keys(await redis.hgetall(key));
    // Transactions are remembered only until the window fired.
    expect(fields.filter((f) => f.startsWith("t:"))).toHaveLength(5);
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(990);
    expect(ttl).toBeLessThanOrEqual(1000);
  });

  it("counts clients and windows apart", async () => {
    const store = new CampaignStore(redis, { prefix: prefix(), settings: SETTINGS });
    const raised = await store.apply([
      { clientKey: "203.0.113.9", windowStart: 0, events: Array.from({ length: 3 }, () => ev()) },
      { clientKey: "203.0.113.10", windowStart: 0, events: Array.from({ length: 5 }, () => ev()) },
      { clientKey: "203.0.113.9", windowStart: 300, events: Array.from({ length: 3 }, () => ev()) },
    ]);
    expect(raised.map((r) => [r.clientKey, r.windowStart])).toEqual([["203.0.113.10", 0]]);
  });

  it("writes nothing when campaigns are off", async () => {
    const p = prefix();
    const store = new CampaignStore(redis, { prefix: p, settings: { ...SETTINGS, minEvents: 0 } });
    const events = [["942"], ["941"], ["932"]].map((c) => ev({ categories: c }));
    expect(await store.apply([group(events)])).toEqual([]);
    expect(await redis.keys(`${p}*`)).toEqual([]);
  });

  it("keeps severities above 2^53 / 10 exact", async () => {
    const store = new CampaignStore(redis, {
      prefix: prefix(),
      settings: { ...SETTINGS, minEvents: 1 },
    });
    const [r] = await store.apply([
      group([ev({ severity: 1_000_000_000_000_035, anomalyScore: 1e15 })]),
    ]);
    expect(r?.figures.maxSeverity).toBe(1_000_000_000_000_035);
    expect(r?.figures.maxAnomaly).toBe(1e15);
  });
});
