/**
 * Retries, backoff and the circuit breaker, on a fake clock: which failures are retried,
 * which are not (so nothing is sent twice where that is avoidable), and when it gives up.
 */

import { describe, expect, it } from "vitest";
import { fakeClock } from "../../test/clock.ts";
import type { Clock } from "../lib/time.ts";
import {
  type AttemptResult,
  CircuitBreaker,
  type CircuitState,
  classifyFetchError,
  type DeliveryPolicy,
  deliver,
  httpPost,
  redact,
} from "./delivery.ts";

const policy = (extra: Partial<DeliveryPolicy> = {}): DeliveryPolicy => ({
  attemptTimeoutMs: 1000,
  maxAttempts: 4,
  baseDelayMs: 100,
  maxDelayMs: 1000,
  retryAmbiguous: false,
  ...extra,
});

/** An attempt function answering from a script, one result per call. */
function scripted(...results: AttemptResult[]) {
  let calls = 0;
  const fn = async () => {
    const r = results[Math.min(calls, results.length - 1)] as AttemptResult;
    calls++;
    return r;
  };
  return { fn, calls: () => calls };
}

const failed: AttemptResult = { ok: false, kind: "failed", status: 500, detail: "HTTP 500" };
const ambiguous: AttemptResult = { ok: false, kind: "ambiguous", detail: "timeout" };
const rejected: AttemptResult = { ok: false, kind: "rejected", status: 400, detail: "HTTP 400" };
const ok: AttemptResult = { ok: true, status: 202 };

const breaker = (clock: Clock, threshold = 100) =>
  new CircuitBreaker({ failureThreshold: threshold, cooldownMs: 30_000, now: clock.now });

describe("deliver", () => {
  it("retries a 5xx with growing backoff until it succeeds", async () => {
    const clock = fakeClock();
    const s = scripted(failed, failed, ok);
    const out = await deliver(s.fn, {
      policy: policy(),
      breaker: breaker(clock),
      deadlineAt: clock.t + 60_000,
      clock,
      random: () => 0.5,
    });
    expect(out).toEqual({ ok: true, attempts: 3, status: 202 });
    // Equal jitter (core/lib/backoff.ts): half the ceiling plus half of it times the draw.
    expect(clock.slept).toEqual([75, 150]);
  });

  it("does not retry a refusal (4xx)", async () => {
    const clock = fakeClock();
    const s = scripted(rejected, ok);
    const out = await deliver(s.fn, {
      policy: policy(),
      breaker: breaker(clock),
      deadlineAt: clock.t + 60_000,
      clock,
    });
    expect(out).toMatchObject({ ok: false, attempts: 1, reason: "rejected", status: 400 });
    expect(s.calls()).toBe(1);
  });

  it("does not retry an ambiguous failure on a channel that does not deduplicate", async () => {
    const clock = fakeClock();
    const s = scripted(ambiguous, ok);
    const out = await deliver(s.fn, {
      policy: policy({ retryAmbiguous: false }),
      breaker: breaker(clock),
      deadlineAt: clock.t + 60_000,
      clock,
    });
    expect(out).toMatchObject({ ok: false, attempts: 1, reason: "ambiguous", detail: "timeout" });
    expect(s.calls()).toBe(1);
  });

  it("retries an ambiguous failure on an idempotent channel", async () => {
    const clock = fakeClock();
    const s = scripted(ambiguous, ok);
    const out = await deliver(s.fn, {
      policy: policy({ retryAmbiguous: true }),
      breaker: breaker(clock),
      deadlineAt: clock.t + 60_000,
      clock,
    });
    expect(out).toEqual({ ok: true, attempts: 2, status: 202 });
  });

  it("gives up after maxAttempts", async () => {
    const clock = fakeClock();
    const s = scripted(failed);
    const out = await deliver(s.fn, {
      policy: policy({ maxAttempts: 3 }),
      breaker: breaker(clock),
      deadlineAt: clock.t + 60_000,
      clock,
    });
    expect(out).toMatchObject({ ok: false, attempts: 3, reason: "failed", detail: "HTTP 500" });
    expect(s.calls()).toBe(3);
  });

  it("never waits past the deadline", async () => {
    const clock = fakeClock();
    const s = scripted(failed);
    const out = await deliver(s.fn, {
      policy: policy({ maxAttempts: 10, baseDelayMs: 400 }),
      breaker: breaker(clock),
      deadlineAt: clock.t + 1000,
      clock,
      random: () => 1, // the full ceiling: 400, then 800 would end past the deadline
    });
    expect(out.ok).toBe(false);
    expect(clock.t).toBeLessThanOrEqual(1_000_000 + 1000);
    expect(s.calls()).toBe(2);
  });

  it("waits at least Retry-After on a 429", async () => {
    const clock = fakeClock();
    const s = scripted(
      { ok: false, kind: "failed", status: 429, detail: "HTTP 429", retryAfterMs: 700 },
      ok,
    );
    await deliver(s.fn, {
      policy: policy(),
      breaker: breaker(clock),
      deadlineAt: clock.t + 60_000,
      clock,
      random: () => 0,
    });
    expect(clock.slept).toEqual([700]);
  });

  it("row 4: ends a thrown attempt as invalid, without retrying or moving the circuit breaker", async () => {
    const clock = fakeClock();
    const b = breaker(clock, 1);
    let calls = 0;
    const out = await deliver(
      async () => {
        calls++;
        throw new URIError("URI malformed");
      },
      {
        policy: policy({ retryAmbiguous: true }),
        breaker: b,
        deadlineAt: clock.t + 60_000,
        clock,
      },
    );
    expect(out).toEqual({
      ok: false,
      attempts: 1,
      reason: "invalid",
      detail: "could not send: URIError",
    });
    expect(calls).toBe(1);
    // Our own failure says nothing about the receiver: with a threshold of one failure, the
    // circuit is still closed.
    expect(b.state).toBe("closed");
  });

  it("makes no attempt while the circuit is open", async () => {
    const clock = fakeClock();
    const b = breaker(clock, 2);
    const s = scripted(failed);
    await deliver(s.fn, {
      policy: policy({ maxAttempts: 2 }),
      breaker: b,
      deadlineAt: clock.t + 60_000,
      clock,
    });
    expect(b.state).toBe("open");
    const out = await deliver(s.fn, {
      policy: policy(),
      breaker: b,
      deadlineAt: clock.t + 60_000,
      clock,
    });
    expect(out).toMatchObject({ ok: false, attempts: 0, reason: "circuit-open" });
    expect(s.calls()).toBe(2);
  });
});

describe("circuit breaker", () => {
  it("opens after N consecutive failures, probes once after the cooldown, closes on success", () => {
    const clock = fakeClock();
    const changes: CircuitState[] = [];
    const b = new CircuitBreaker({
      failureThreshold: 3,
      cooldownMs: 10_000,
      now: clock.now,
      onChange: (s) => changes.push(s),
    });
    b.failure();
    b.failure();
    b.success();
    b.failure();
    b.failure();
    expect(b.state).toBe("closed");
    b.failure();
    expect(b.state).toBe("open");
    expect(b.tryAcquire()).toBe(false);
    clock.t += 10_000;
    expect(b.tryAcquire()).toBe(true);
    expect(b.state).toBe("half-open");
    expect(b.tryAcquire()).toBe(false);
    b.success();
    expect(b.state).toBe("closed");
    expect(changes).toEqual(["open", "half-open", "closed"]);
  });

  it("reopens when the probe fails", () => {
    const clock = fakeClock();
    const b = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 5000, now: clock.now });
    b.failure();
    clock.t += 5000;
    expect(b.tryAcquire()).toBe(true);
    b.failure();
    expect(b.state).toBe("open");
    expect(b.tryAcquire()).toBe(false);
  });
});

describe("HTTP classification", () => {
  const respond = (status: number, headers: Record<string, string> = {}, body = "") =>
    httpPost(
      async () => new Response(status === 204 ? null : body, { status, headers }),
      "http://x/",
      "{}",
      {},
      new AbortController().signal,
    );

  it.each([
    [200, true, undefined],
    [202, true, undefined],
    [204, true, undefined],
    [500, false, "failed"],
    [503, false, "failed"],
    [429, false, "failed"],
    [408, false, "failed"],
    [400, false, "rejected"],
    [403, false, "rejected"],
    [404, false, "rejected"],
    [302, false, "rejected"],
  ])("HTTP %i → ok %s, %s", async (status, okay, kind) => {
    const r = await respond(status);
    expect(r.ok).toBe(okay);
    if (!r.ok) expect(r.kind).toBe(kind);
  });

  it("reads Retry-After and a short body snippet", async () => {
    const r = await respond(429, { "retry-after": "2" }, "slow   down\n please");
    expect(r).toEqual({
      ok: false,
      kind: "failed",
      status: 429,
      detail: "HTTP 429: slow down please",
      retryAfterMs: 2000,
    });
  });

  it.each([
    [Object.assign(new Error("x"), { name: "TimeoutError" }), "ambiguous", "timeout"],
    [
      Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNREFUSED" } }),
      "failed",
      "ECONNREFUSED",
    ],
    [
      Object.assign(new TypeError("fetch failed"), { cause: { code: "ENOTFOUND" } }),
      "failed",
      "ENOTFOUND",
    ],
    [
      Object.assign(new TypeError("fetch failed"), { cause: { code: "ECONNRESET" } }),
      "ambiguous",
      "ECONNRESET",
    ],
    [
      Object.assign(new TypeError("fetch failed"), { cause: { code: "UND_ERR_SOCKET" } }),
      "ambiguous",
      "UND_ERR_SOCKET",
    ],
  ])("classifies %s as %s", (err, kind, detail) => {
    expect(classifyFetchError(err)).toEqual({ ok: false, kind, detail });
  });

  it("never puts the error message (which may hold the URL) in the detail", () => {
    const err = Object.assign(new TypeError("fetch failed for https://hooks/secret"), {
      cause: { code: "ECONNREFUSED", message: "connect https://hooks/secret" },
    });
    expect(JSON.stringify(classifyFetchError(err))).not.toContain("secret");
  });
});

describe("redact", () => {
  it("removes secrets and their URL-encoded forms", () => {
    expect(redact("key=a/b c and a%2Fb%20c", ["a/b c"])).toBe("key=[REDACTED] and [REDACTED]");
    expect(redact("abc", [undefined, "", "ab"])).toBe("abc");
  });
});
