/**
 * Threat intelligence against a REAL Redis (reference §3): blocklist files into the sorted set
 * with expiry, the scorer's in-memory copy (feed set, plain set, repeat offenders, hashed
 * entries) refreshed in the background, repeat-offender counting by the alert function, and
 * the scorer's wiring. Unique keys per test.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Logger } from "@aws-lambda-powertools/logger";
import type { Context } from "aws-lambda";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHandler as createAlertHandler } from "../../functions/alert.ts";
import { liveDeps as scoreLiveDeps } from "../../functions/score.ts";
import { type RunningService, startRedis } from "../../local/services.ts";
import { envelope } from "../../test/fixtures/records.ts";
import type { Alert } from "../alert/alert.ts";
import { AlertList } from "../alert/alert-list.ts";
import { loadConfig } from "../config.ts";
import { parseIp } from "../event/ip.ts";
import { maskIp } from "../privacy/privacy.ts";
import { scoreRecord } from "../scorer.ts";
import { BlocklistLoadError, loadBlocklist } from "./blocklist.ts";
import { ReputationCache } from "./cache.ts";
import { RepeatOffenders } from "./offenders.ts";

let service: RunningService;
let redis: Redis;
const dir = mkdtempSync(join(tmpdir(), "waf-blocklist-"));
const quiet = new Logger({ serviceName: "test", logLevel: "SILENT" });

beforeAll(async () => {
  service = await startRedis();
  redis = new Redis(service.url);
});

afterAll(async () => {
  redis?.disconnect();
  await service?.stop();
});

const key = () => `test:intel:${randomUUID()}`;
const ip = (text: string) => parseIp(text) ?? (undefined as never);

function file(lines: string[]): string {
  const path = join(dir, `${randomUUID()}.txt`);
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

async function until(what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("loadBlocklist", () => {
  it("loads IPs and CIDRs into a sorted set scored by expiry, reporting bad lines", async () => {
    const k = key();
    const before = Math.floor(Date.now() / 1000);
    const res = await loadBlocklist(
      redis,
      k,
      file(["# feed", "203.0.113.9", "198.51.100.0/24 ; drop", "nonsense", "2001:db8::/32"]),
      3600,
    );
    expect(res.loaded).toBe(3);
    expect(res.invalid).toEqual([{ line: 4, text: "nonsense" }]);
    expect(res.expiresAt).toBeGreaterThanOrEqual(before + 3600);
    const members = await redis.zrange(k, "0", "-1", "WITHSCORES");
    const byEntry = Object.fromEntries(
      Array.from({ length: members.length / 2 }, (_, i) => [
        members[2 * i],
        Number(members[2 * i + 1]),
      ]),
    );
    expect(byEntry).toEqual({
      "203.0.113.9": res.expiresAt,
      "198.51.100.0/24": res.expiresAt,
      "2001:db8::/32": res.expiresAt,
    });
  });

  it("never shortens an expiry already there, and prunes expired entries", async () => {
    const k = key();
    const now = Math.floor(Date.now() / 1000);
    await redis.zadd(k, "+inf", "203.0.113.9", now - 10, "192.0.2.1");
    const res = await loadBlocklist(redis, k, file(["203.0.113.9", "198.51.100.7"]), 60);
    expect(res.pruned).toBe(1);
    expect(await redis.zscore(k, "203.0.113.9")).toBe("inf");
    expect(Number(await redis.zscore(k, "198.51.100.7"))).toBe(res.expiresAt);
    expect(await redis.zscore(k, "192.0.2.1")).toBeNull();
  });

  it("loads without expiry when no TTL is given", async () => {
    const k = key();
    const res = await loadBlocklist(redis, k, file(["203.0.113.9"]));
    expect(res.expiresAt).toBeNull();
    expect(await redis.zscore(k, "203.0.113.9")).toBe("inf");
  });

  it("refuses a key that is not a sorted set", async () => {
    const k = key();
    await redis.sadd(k, "203.0.113.9");
    await expect(loadBlocklist(redis, k, file(["198.51.100.7"]), 60)).rejects.toThrow(
      BlocklistLoadError,
    );
  });
});

describe("ReputationCache", () => {
  it("holds unexpired feed entries and repeat offenders in memory", async () => {
    const feed = key();
    const offenders = key();
    const now = Math.floor(Date.now() / 1000);
    await redis.zadd(
      feed,
      now + 600,
      "203.0.113.0/24",
      now - 1,
      "192.0.2.1",
      "+inf",
      "2001:db8::/32",
    );
    await redis.zadd(offenders, now + 600, "198.51.100.7");
    const cache = new ReputationCache(redis, {
      feedKey: feed,
      offendersKey: offenders,
      refreshMs: 60_000,
    });
    await cache.start();
    expect(cache.size).toBe(3);
    expect(cache.has(ip("203.0.113.77"))).toBe(true);
    expect(cache.has(ip("::ffff:203.0.113.77"))).toBe(true);
    expect(cache.has(ip("2001:db8:5::1"))).toBe(true);
    expect(cache.has(ip("198.51.100.7"))).toBe(true);
    expect(cache.has(ip("192.0.2.1"))).toBe(false);
    expect(cache.has(ip("8.8.8.8"))).toBe(false);
  });

  it("reads a plain set written with SADD (entries without expiry) and skips garbage", async () => {
    const feed = key();
    await redis.sadd(feed, "203.0.113.9", "not-an-ip", "10.0.0.0/8");
    const cache = new ReputationCache(redis, { feedKey: feed, refreshMs: 60_000, logger: quiet });
    expect(await cache.refresh()).toEqual({ feed: 3, offenders: 0, invalid: 1 });
    expect(cache.has(ip("10.1.2.3"))).toBe(true);
    expect(cache.has(ip("203.0.113.9"))).toBe(true);
  });

  it("picks up new entries in the background while has() keeps answering from memory", async () => {
    const feed = key();
    const cache = new ReputationCache(redis, { feedKey: feed, refreshMs: 50 });
    await cache.start();
    expect(cache.has(ip("203.0.113.9"))).toBe(false);
    await redis.zadd(feed, "+inf", "203.0.113.9");
    // has() never waits for Redis: it returns at once and starts a reload when the copy is stale.
    await until("the reload to see the new entry", () => cache.has(ip("203.0.113.9")));
    await redis.zrem(feed, "203.0.113.9");
    await until("the reload to drop the removed entry", () => !cache.has(ip("203.0.113.9")));
  });

  it("keeps its copy when Redis is unreachable, minus entries that expired meanwhile", async () => {
    const feed = key();
    let now = Date.now();
    const nowS = Math.floor(now / 1000);
    await redis.zadd(feed, nowS + 5, "203.0.113.9", nowS + 3600, "198.51.100.7");
    const client = new Redis(service.url);
    const cache = new ReputationCache(client, {
      feedKey: feed,
      refreshMs: 1000,
      logger: quiet,
      now: () => now,
    });
    await cache.start();
    expect(cache.size).toBe(2);
    client.disconnect();
    now += 10_000;
    expect(await cache.refresh()).toBeUndefined();
    expect(cache.has(ip("203.0.113.9"))).toBe(false);
    expect(cache.has(ip("198.51.100.7"))).toBe(true);
  });

  it("matches hashed offender entries (IP_MASKING=hash) by hashing the client IP", async () => {
    const offenders = key();
    const privacy = { ipMasking: "hash" as const, ipHashKey: "k3y" };
    await redis.zadd(offenders, "+inf", maskIp("203.0.113.9", privacy));
    const cache = new ReputationCache(redis, {
      offendersKey: offenders,
      refreshMs: 60_000,
      ipHashKey: "k3y",
    });
    await cache.start();
    expect(cache.has(ip("203.0.113.9"))).toBe(true);
    expect(cache.has(ip("::ffff:203.0.113.9"))).toBe(true);
    expect(cache.has(ip("203.0.113.10"))).toBe(false);
  });
});

describe("RepeatOffenders", () => {
  const offenders = (
    k: string,
    extra: Partial<ConstructorParameters<typeof RepeatOffenders>[1]> = {},
  ) =>
    new RepeatOffenders(redis, {
      key: k,
      threshold: 3,
      windowSeconds: 300,
      ttlSeconds: 600,
      masking: "off",
      ...extra,
    });
  const a = (tx: string, client_ip = "203.0.113.9") => ({ tx_id: tx, client_ip });

  it("marks a client malicious at the threshold, for the TTL", async () => {
    const k = key();
    const o = offenders(k);
    expect(await o.record([a("1"), a("2")])).toEqual([]);
    expect(await redis.zscore(k, "203.0.113.9")).toBeNull();
    expect(await o.record([a("3")])).toEqual(["203.0.113.9"]);
    const [seconds] = await redis.time();
    const until = Number(await redis.zscore(k, "203.0.113.9"));
    expect(until - Number(seconds)).toBeGreaterThan(590);
    expect(until - Number(seconds)).toBeLessThanOrEqual(600);
    // Already an offender: extended, not reported again.
    expect(await o.record([a("4")])).toEqual([]);
  });

  it("does not count one tx_id twice", async () => {
    const k = key();
    const o = offenders(k);
    await o.record([a("1"), a("1"), a("1")]);
    expect(await redis.zscore(k, "203.0.113.9")).toBeNull();
  });

  it("counts per client, and a truncated IP marks its whole network", async () => {
    const k = key();
    const o = offenders(k, { masking: "truncate" });
    const marked = await o.record([
      a("1", "203.0.113.0"),
      a("2", "198.51.100.0"),
      a("3", "203.0.113.0"),
      a("4", "203.0.113.0"),
    ]);
    expect(marked).toEqual(["203.0.113.0/24"]);
    const cache = new ReputationCache(redis, { offendersKey: k, refreshMs: 60_000 });
    await cache.start();
    expect(cache.has(ip("203.0.113.200"))).toBe(true);
    expect(cache.has(ip("198.51.100.1"))).toBe(false);
  });

  it("forgets alerts older than the window", async () => {
    const k = key();
    const o = offenders(k, { windowSeconds: 1, threshold: 2 });
    await o.record([a("1")]);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await o.record([a("2")])).toEqual([]);
    expect(await o.record([a("3")])).toEqual(["203.0.113.9"]);
  });
});

describe("wiring", () => {
  const context = { awsRequestId: "r", functionName: "waf-alerter" } as Context;

  it("the alert function marks repeat offenders that the scorer then treats as malicious", async () => {
    const intel = key();
    const config = loadConfig({
      REDIS_URL: service.url,
      REPUTATION_SET_KEY: intel,
      REPEAT_OFFENDER_THRESHOLD: "3",
      REPUTATION_REFRESH_S: "1",
      LOG_LEVEL: "silent",
    });
    const handler = createAlertHandler({
      list: new AlertList(redis, {
        listKey: `${intel}:alerts`,
        maxLength: 100,
        retentionSeconds: 600,
      }),
      notifiers: [],
      logger: quiet,
      offenders: new RepeatOffenders(redis, {
        key: `${intel}:offenders`,
        threshold: 3,
        windowSeconds: 300,
        ttlSeconds: 600,
        masking: "off",
      }),
    });
    const score = await scoreLiveDeps(config);
    // 65 anomaly + 0 (protocol weighs nothing): high, and critical only with the +15 bonus.
    const record = JSON.stringify(
      envelope({ id: "x", anomaly: 65, rules: ["920350"], ip: "192.0.2.44" }),
    );
    const before = scoreRecord(record, score.settings);
    expect(before.ok && before.score.severity).toBe(65);

    const alert = (tx: string): Alert => ({
      timestamp: 1_700_000_000,
      severity: 95,
      severity_level: "critical",
      client_ip: "192.0.2.44",
      rule_id: "942100",
      categories: ["sqli"],
      uri: "/",
      method: "GET",
      tx_id: tx,
      anomaly_score: 65,
    });
    await handler({ alerts: [alert("o1"), alert("o2"), alert("o3")] }, context);

    await until("the scorer's copy to see the offender", () => {
      const r = scoreRecord(record, score.settings);
      return r.ok && r.score.severity === 80;
    });
    const after = scoreRecord(record, score.settings);
    expect(after.ok && after.score.level).toBe("critical");
  });

  it("the scorer loads the threat-intelligence set at cold start", async () => {
    const intel = key();
    await loadBlocklist(redis, intel, file(["192.0.2.0/24"]), 600);
    const score = await scoreLiveDeps(
      loadConfig({ REDIS_URL: service.url, REPUTATION_SET_KEY: intel, LOG_LEVEL: "silent" }),
    );
    expect(score.settings.reputation.verdict("192.0.2.9")).toEqual({
      malicious: true,
      allowlisted: false,
    });
    expect(score.settings.reputation.verdict("192.0.3.9").malicious).toBe(false);
  });
});
