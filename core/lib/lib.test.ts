import { describe, expect, it } from "vitest";
import { backoffMs } from "./backoff.ts";
import { fieldMap, fieldValue } from "./fields.ts";
import { Limiter, mapLimit } from "./limiter.ts";
import { parseRetryAfter, RETRY_AFTER_MAX_MS } from "./retry-after.ts";
import { sleep } from "./time.ts";

describe("backoffMs", () => {
  const policy = { baseMs: 200, maxMs: 5_000 };
  it.each([
    [1, 0, 100],
    [1, 1, 200],
    [2, 0, 200],
    [3, 0.5, 600],
    [10, 0, 2_500],
    [10, 1, 5_000],
  ])("attempt %i with random %f waits %i ms", (attempt, random, expected) => {
    expect(backoffMs(attempt, policy, random)).toBe(expected);
  });
  it("treats attempt 0 like the first retry", () => {
    expect(backoffMs(0, policy, 0)).toBe(100);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it.each([
    ["3", 3_000],
    [" 0 ", 0],
    ["Thu, 01 Jan 2026 00:00:02 GMT", 2_000],
    ["Wed, 31 Dec 2025 23:00:00 GMT", 0],
    ["999999", RETRY_AFTER_MAX_MS],
  ])("reads %j as %i ms", (header, ms) => {
    expect(parseRetryAfter(header, now)).toBe(ms);
  });
  it.each([[null], [undefined], [""], ["soon"], ["-1"], ["1.5"]])("ignores %j", (header) => {
    expect(parseRetryAfter(header, now)).toBeUndefined();
  });
});

describe("fieldMap / fieldValue", () => {
  it("pairs a flat list, later duplicates winning, an odd tail ignored", () => {
    expect(fieldMap(["a", "1", "b", 2, "a", "3", "tail"])).toEqual({ a: "3", b: 2 });
    expect(fieldMap(null)).toEqual({});
  });
  it("finds the first value of a field", () => {
    expect(fieldValue(["event", "{}", "origin_id", "1-0", "event", "x"], "event")).toBe("{}");
    expect(fieldValue(["event", "{}"], "origin_id")).toBeUndefined();
    expect(fieldValue(null, "event")).toBeUndefined();
  });
  it("is not fooled by a field named like an Object prototype member", () => {
    expect(Object.getOwnPropertyDescriptor(fieldMap(["__proto__", "x"]), "__proto__")?.value).toBe(
      "x",
    );
  });
});

describe("Limiter", () => {
  it("hands slots out first come first served and passes a released slot on", async () => {
    const l = new Limiter(1);
    expect(await l.acquire()).toBe(true);
    const order: number[] = [];
    const a = l.acquire().then((ok) => order.push(ok ? 1 : -1));
    const b = l.acquire().then((ok) => order.push(ok ? 2 : -2));
    l.release();
    await a;
    l.release();
    await b;
    expect(order).toEqual([1, 2]);
    expect(l.active).toBe(1);
  });
  it("answers false to waiting and later acquires once closed", async () => {
    const l = new Limiter(1);
    l.tryAcquire();
    const waiting = l.acquire();
    l.close();
    expect(await waiting).toBe(false);
    expect(await l.acquire()).toBe(false);
  });
  it("resolves idle() when the last slot is released", async () => {
    const l = new Limiter(2);
    l.tryAcquire();
    l.tryAcquire();
    let idle = false;
    const done = l.idle().then(() => {
      idle = true;
    });
    l.release();
    await Promise.resolve();
    expect(idle).toBe(false);
    l.release();
    await done;
    expect(idle).toBe(true);
  });
  it("mapLimit keeps input order and never runs more than the limit", async () => {
    let running = 0;
    let most = 0;
    const out = await mapLimit([30, 10, 20, 5], 2, async (ms) => {
      running++;
      most = Math.max(most, running);
      await sleep(ms);
      running--;
      return ms * 2;
    });
    expect(out).toEqual([60, 20, 40, 10]);
    expect(most).toBe(2);
  });
});

describe("sleep", () => {
  it("resolves false at once when aborted, true when the time is up", async () => {
    const c = new AbortController();
    const p = sleep(10_000, c.signal);
    c.abort();
    expect(await p).toBe(false);
    expect(await sleep(1)).toBe(true);
    expect(await sleep(1, AbortSignal.abort())).toBe(false);
  });
});
