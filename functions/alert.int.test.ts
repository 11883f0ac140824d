/**
 * The alert function and its Redis list (reference §4) against a REAL Redis: newest first, one
 * entry per tx_id however often it arrives, bounded length and retention, notifiers that hear
 * only newly listed alerts. Every test uses its own list key.
 */
import { randomUUID } from "node:crypto";
import { Logger } from "@aws-lambda-powertools/logger";
import type { Context } from "aws-lambda";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { ALERT_LIMITS, type Alert, MAX_ALERT_BYTES } from "../core/alert/alert.ts";
import { AlertList, type AlertListOptions } from "../core/alert/alert-list.ts";
import type { Notifier } from "../core/alert/ports.ts";
import { RepeatOffenders } from "../core/reputation/offenders.ts";
import { type RunningService, startRedis } from "../local/services.ts";
import { campaignAlert } from "../test/alerts.ts";
import { captureLogs, fakeContext, type LogLine } from "../test/lambda.ts";
import { createHandler } from "./alert.ts";

let service: RunningService;
let redis: Redis;

beforeAll(async () => {
  service = await startRedis();
  redis = new Redis(service.url);
});

afterAll(async () => {
  redis?.disconnect();
  await service?.stop();
});

let logs: LogLine[];

beforeEach(() => {
  logs = captureLogs();
});

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

function context(): Context {
  return fakeContext("waf-alerter");
}

function alert(tx: string, extra: Partial<Alert> = {}): Alert {
  return {
    timestamp: 1_700_000_000,
    severity: 95,
    severity_level: "critical",
    client_ip: "203.0.113.9",
    rule_id: "942100",
    categories: ["sqli"],
    uri: "/login?user=admin'--",
    method: "POST",
    tx_id: tx,
    anomaly_score: 65,
    ...extra,
  };
}

/** A notifier that remembers what it heard, or fails when told to. */
function recorder(name: string, fail = false): Notifier & { heard: Alert[][] } {
  const heard: Alert[][] = [];
  return {
    name,
    heard,
    async notify(alerts) {
      heard.push([...alerts]);
      if (fail) throw new Error(`${name} answered 500`);
    },
  };
}

function setup(opts: Partial<AlertListOptions> = {}, notifiers: Notifier[] = []) {
  const listKey = `test:alerts:${randomUUID()}`;
  const list = new AlertList(redis, {
    listKey,
    maxLength: 100,
    retentionSeconds: 3600,
    ...opts,
  });
  const handler = createHandler({
    list,
    notifiers,
    logger: new Logger({ serviceName: "waf-alerter", logLevel: "DEBUG" }),
  });
  const invoke = (alerts: Alert[]) => handler({ alerts }, context());
  return { listKey, list, handler, invoke };
}

const txIds = (alerts: Array<{ tx_id: string }>) => alerts.map((a) => a.tx_id);

async function redisNow(): Promise<number> {
  const [seconds] = await redis.time();
  return Number(seconds);
}

describe("alert function", () => {
  it("lists alerts newest first, within one call and across calls", async () => {
    const { list, invoke } = setup();
    await invoke([alert("a"), alert("b")]);
    await invoke([alert("c")]);
    expect(txIds(await list.recent())).toEqual(["c", "b", "a"]);
  });

  it("lists the alert as received, plus listed_at in server seconds", async () => {
    const { list, invoke } = setup();
    const before = await redisNow();
    await invoke([alert("a")]);
    const after = await redisNow();
    const [entry] = await list.recent();
    const { listed_at, ...rest } = entry ?? { listed_at: Number.NaN };
    expect(rest).toEqual(alert("a"));
    expect(Number.isInteger(listed_at)).toBe(true);
    expect(listed_at).toBeGreaterThanOrEqual(before);
    expect(listed_at).toBeLessThanOrEqual(after);
  });

  it("keeps one entry per tx_id when the same alert is pushed five times", async () => {
    const { list, invoke } = setup();
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await invoke([alert("same")]));
    expect(await list.recent()).toHaveLength(1);
    expect(results.map((r) => r.listed)).toEqual([1, 0, 0, 0, 0]);
    expect(results[4]).toEqual({ received: 1, listed: 0, duplicates: 1 });
  });

  it("keeps one entry per tx_id when one call carries the alert five times", async () => {
    const { list, invoke } = setup();
    const res = await invoke(Array.from({ length: 5 }, () => alert("same")));
    expect(res).toEqual({ received: 5, listed: 1, duplicates: 4 });
    expect(txIds(await list.recent())).toEqual(["same"]);
  });

  it("keeps one entry per tx_id when five calls race", async () => {
    const { list, invoke } = setup();
    const results = await Promise.all(Array.from({ length: 5 }, () => invoke([alert("same")])));
    expect(results.reduce((n, r) => n + r.listed, 0)).toBe(1);
    expect(await list.recent()).toHaveLength(1);
  });

  it("bounds the list by maxLength, keeping the newest", async () => {
    const { listKey, list, invoke } = setup({ maxLength: 3 });
    await invoke(["1", "2", "3", "4", "5"].map((tx) => alert(tx)));
    expect(await redis.llen(listKey)).toBe(3);
    expect(txIds(await list.recent())).toEqual(["5", "4", "3"]);
  });

  it("drops entries listed before the retention cutoff when a new alert is listed", async () => {
    const retentionSeconds = 3600;
    const { listKey, list, invoke } = setup({ retentionSeconds });
    const now = await redisNow();
    // Listed by hand, as an older alert function would have: oldest at the tail.
    await redis.lpush(
      listKey,
      JSON.stringify({ ...alert("expired-1"), listed_at: now - retentionSeconds - 100 }),
      JSON.stringify({ ...alert("expired-2"), listed_at: now - retentionSeconds - 10 }),
      JSON.stringify({ ...alert("recent"), listed_at: now - 60 }),
    );
    await invoke([alert("new")]);
    expect(txIds(await list.recent())).toEqual(["new", "recent"]);
  });

  it("sets an expiry on the list no longer than the retention", async () => {
    const { listKey, invoke } = setup({ retentionSeconds: 600 });
    await invoke([alert("a")]);
    const ttl = await redis.ttl(listKey);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600);
  });

  it("keeps a tx_id's dedup mark as long as the retention", async () => {
    const { list, invoke } = setup({ retentionSeconds: 600 });
    await invoke([alert("a")]);
    const ttl = await redis.ttl(list.dedupKey("a"));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600);
  });

  it("lets notifiers hear only newly listed alerts", async () => {
    const slack = recorder("slack");
    const { invoke } = setup({}, [slack]);
    await invoke([alert("a"), alert("b")]);
    await invoke([alert("a"), alert("c"), alert("b")]);
    await invoke([alert("c")]);
    expect(slack.heard.flat().map((a) => a.tx_id)).toEqual(["a", "b", "c"]);
  });

  it("does not fail when a notifier fails: the alert stays listed and other channels still hear", async () => {
    const broken = recorder("pagerduty", true);
    const slack = recorder("slack");
    const { list, invoke } = setup({}, [broken, slack]);
    const res = await invoke([alert("a")]);
    expect(res).toEqual({ received: 1, listed: 1, duplicates: 0 });
    expect(txIds(await list.recent())).toEqual(["a"]);
    expect(slack.heard.flat().map((a) => a.tx_id)).toEqual(["a"]);
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: "ERROR",
        message: "notification channel failed",
        channel: "pagerduty",
        error: "pagerduty answered 500",
      }),
    );
  });

  it("logs each newly listed alert with tx_id, client_ip, severity and rule_id", async () => {
    const { invoke } = setup();
    await invoke([alert("a"), alert("a")]);
    const listed = logs.filter((l) => l.message === "alert listed");
    expect(listed).toEqual([
      expect.objectContaining({
        level: "INFO",
        service: "waf-alerter",
        tx_id: "a",
        client_ip: "203.0.113.9",
        severity: 95,
        rule_id: "942100",
      }),
    ]);
  });

  it("refuses a malformed request and lists nothing", async () => {
    const { listKey, handler } = setup();
    await expect(handler({ alerts: [{ tx_id: "a" }] }, context())).rejects.toThrow(
      /invalid alert request/,
    );
    await expect(handler(undefined, context())).rejects.toThrow(/invalid alert request/);
    expect(await redis.exists(listKey)).toBe(0);
  });

  it("row 3: bounds a 200 KB method (and every other request field) instead of listing it or refusing it", async () => {
    const { listKey, list, invoke } = setup();
    const huge = "G".repeat(200 * 1024);
    const res = await invoke([
      alert("big", { method: huge, uri: `/${huge}`, rule_id: huge, categories: [huge, huge] }),
    ]);
    expect(res).toEqual({ received: 1, listed: 1, duplicates: 0 });
    const [raw] = await redis.lrange(listKey, 0, 0);
    expect(Buffer.byteLength(raw ?? "")).toBeLessThan(MAX_ALERT_BYTES);
    const [entry] = await list.recent();
    expect(Buffer.byteLength(entry?.method ?? "")).toBeLessThanOrEqual(ALERT_LIMITS.method);
    expect(entry?.method).toMatch(/^G+…$/);
    expect(entry?.severity).toBe(95);
  });

  it("lists and notifies the valid alerts of a request that holds a malformed one, then fails it", async () => {
    const slack = recorder("slack");
    const { list, handler } = setup({}, [slack]);
    await expect(
      handler({ alerts: [alert("good-1"), { tx_id: "bad" }, alert("good-2")] }, context()),
    ).rejects.toThrow(
      "invalid alert request: 1 of 3 alerts malformed (alerts.1.timestamp: invalid_type)",
    );
    expect(txIds(await list.recent())).toEqual(["good-2", "good-1"]);
    expect(slack.heard.flat().map((a) => a.tx_id)).toEqual(["good-1", "good-2"]);
  });

  it("accepts campaign alerts with their figures, and never counts them as repeat offences", async () => {
    const key = `test:offenders:${randomUUID()}`;
    const offenders = new RepeatOffenders(redis, {
      key,
      threshold: 2,
      windowSeconds: 300,
      ttlSeconds: 600,
      masking: "off",
    });
    const listKey = `test:alerts:${randomUUID()}`;
    const list = new AlertList(redis, { listKey, maxLength: 100, retentionSeconds: 3600 });
    const handler = createHandler({
      list,
      notifiers: [],
      offenders,
      logger: new Logger({ serviceName: "waf-alerter", logLevel: "DEBUG" }),
    });
    const campaign = campaignAlert();
    await handler({ alerts: [campaign, alert("e-1", { kind: "event" })] }, context());
    const [, listed] = await list.recent();
    expect(listed).toMatchObject({ ...campaign, listed_at: expect.any(Number) });
    // One event and one campaign from one client: one offence, under the threshold of two.
    expect(await redis.zcard(key)).toBe(0);
    await handler({ alerts: [alert("e-2")] }, context());
    expect(await redis.zrange(key, "0", "-1")).toEqual(["203.0.113.9"]);
  });

  it("refuses an alert of an unknown kind", async () => {
    const { handler } = setup();
    await expect(
      handler({ alerts: [{ ...alert("k"), kind: "other" }] }, context()),
    ).rejects.toThrow(/invalid alert request: 1 of 1 alerts malformed/);
  });
});
