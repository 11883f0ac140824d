/**
 * The delivery policy on its own: no Redis, no timers — a fake clock and a fixed random draw.
 * Each test feeds outcomes and checks the decisions (acknowledge, dead-letter, retry, bisect,
 * pause) that the reader loop then carries out.
 */
import { describe, expect, it } from "vitest";
import { fakeClock } from "../../test/clock.ts";
import {
  type Action,
  type Delivery,
  DeliveryPolicy,
  PAUSE_MAX_MS,
  PAUSE_MIN_MS,
} from "./policy.ts";

function entries(...ids: string[]): Delivery[] {
  return ids.map((id) => ({
    id,
    deliveryCount: 1,
    failures: 0,
    lastError: undefined,
    lastFailedAt: 0,
  }));
}

function setup(maxRetries = 3) {
  const clock = fakeClock(1_000_000);
  const policy = new DeliveryPolicy(
    { maxRetries, retryBaseMs: 100, retryMaxMs: 10_000 },
    () => clock.now(),
    () => 1,
  );
  return { clock, policy };
}

const result = (failed: string[] = [], rejected: Record<string, string> = {}) => ({
  failed: new Set(failed),
  rejected: new Map(Object.entries(rejected)),
});

/** A compact view of decisions: kind and the IDs they touch. */
function view(actions: Action<Delivery>[]) {
  return actions.map((a) =>
    a.kind === "deadLetter"
      ? { kind: a.kind, ids: [a.entry.id], attempts: a.attempts, reason: a.reason }
      : a.kind === "retry"
        ? { kind: a.kind, ids: a.entries.map((e) => e.id), why: a.why, delayMs: a.delayMs }
        : { kind: a.kind, ids: a.entries.map((e) => e.id) },
  );
}

describe("DeliveryPolicy: the scorer answered", () => {
  it("acknowledges what is done, dead-letters what was rejected, retries what failed", () => {
    const { policy } = setup();
    const batch = entries("1-0", "2-0", "3-0");
    const out = view(policy.onResult(batch, result(["3-0"], { "2-0": "not JSON" })));
    expect(out).toEqual([
      { kind: "ack", ids: ["1-0"] },
      { kind: "deadLetter", ids: ["2-0"], attempts: 1, reason: "not JSON" },
      { kind: "retry", ids: ["3-0"], why: "failed", delayMs: 100 },
    ]);
    expect(batch[2]?.failures).toBe(1);
  });

  it("treats an entry both failed and rejected as rejected, and ignores IDs not in the batch", () => {
    const { policy } = setup();
    const out = view(
      policy.onResult(entries("1-0"), result(["1-0", "9-9"], { "1-0": "bad", "8-8": "x" })),
    );
    expect(out).toEqual([{ kind: "deadLetter", ids: ["1-0"], attempts: 1, reason: "bad" }]);
  });

  it("dead-letters a record after maxRetries failed invocations, with the attempt count", () => {
    const { policy, clock } = setup(3);
    const [e] = entries("1-0");
    const done = entries("2-0");
    let last: ReturnType<typeof view> = [];
    for (let i = 0; i < 3; i++) {
      // Another record gets done each round, so the failure is this record's, not an outage.
      policy.onResult(done, result());
      clock.t += 10;
      last = view(policy.onResult([e as Delivery, ...done], result(["1-0"])));
    }
    expect(last.at(-1)).toMatchObject({
      kind: "deadLetter",
      ids: ["1-0"],
      attempts: 3,
      reason: "scorer reported the record as failed (gave up after 3 attempts)",
    });
  });

  it("grows the retry delay with the attempts, up to retryMaxMs", () => {
    const { policy } = setup(20);
    const [e] = entries("1-0");
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      const [retry] = policy
        .onResult([e as Delivery, ...entries(`d${i}`)], result(["1-0"]))
        .filter((a) => a.kind === "retry");
      if (retry?.kind === "retry") delays.push(retry.delayMs);
    }
    expect(delays.slice(0, 4)).toEqual([100, 200, 400, 800]);
    expect(delays.at(-1)).toBe(10_000);
  });
});

describe("DeliveryPolicy: bisect", () => {
  it("splits a batch that failed as a whole into halves, charging nobody", () => {
    const { policy } = setup();
    const batch = entries("1-0", "2-0", "3-0", "4-0", "5-0");
    const out = view(policy.onFunctionError(batch, "Runtime.ExitError"));
    expect(out).toEqual([
      { kind: "retry", ids: ["1-0", "2-0", "3-0"], why: "bisect", delayMs: 100 },
      { kind: "retry", ids: ["4-0", "5-0"], why: "bisect", delayMs: 100 },
    ]);
    expect(batch.every((e) => e.failures === 0)).toBe(true);
  });

  it("isolates a poison record in log2(n) rounds, then charges it alone until it is dead-lettered", () => {
    const { policy } = setup(3);
    let queue: Delivery[][] = [entries(...Array.from({ length: 16 }, (_, i) => `${i}-0`))];
    const poison = "11-0";
    const deadLettered: string[] = [];
    let rounds = 0;
    while (queue.length > 0 && rounds < 100) {
      rounds++;
      const next: Delivery[][] = [];
      for (const batch of queue) {
        const actions = batch.some((e) => e.id === poison)
          ? policy.onFunctionError(batch, "boom")
          : policy.onResult(batch, result());
        for (const a of actions) {
          if (a.kind === "retry") next.push(a.entries);
          if (a.kind === "deadLetter") deadLettered.push(a.entry.id);
        }
      }
      queue = next;
    }
    expect(deadLettered).toEqual([poison]);
    // 4 halvings of 16, then 3 solo attempts.
    expect(rounds).toBe(4 + 3);
  });
});

describe("DeliveryPolicy: outages", () => {
  it("pauses without charging anyone when the scorer is unavailable, doubling the pause", () => {
    const { policy, clock } = setup();
    const batch = entries("1-0", "2-0");
    const pauses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const [a] = policy.onUnavailable(batch);
      expect(a).toMatchObject({ kind: "retry", why: "paused" });
      pauses.push(policy.pause);
    }
    expect(pauses.slice(0, 3)).toEqual([PAUSE_MIN_MS, 2 * PAUSE_MIN_MS, 4 * PAUSE_MIN_MS]);
    expect(pauses.at(-1)).toBe(PAUSE_MAX_MS);
    expect(policy.pausedFor()).toBe(PAUSE_MAX_MS);
    clock.t += PAUSE_MAX_MS;
    expect(policy.pausedFor()).toBe(0);
    expect(batch.every((e) => e.failures === 0)).toBe(true);
  });

  it("pauses when every record of a batch fails and nothing else got done since (a dependency is down)", () => {
    const { policy } = setup();
    const batch = entries("1-0", "2-0");
    for (let i = 0; i < 5; i++) {
      const out = view(policy.onResult(batch, result(["1-0", "2-0"])));
      expect(out).toEqual([
        { kind: "retry", ids: ["1-0", "2-0"], why: "paused", delayMs: policy.pause },
      ]);
    }
    expect(batch.every((e) => e.failures === 0)).toBe(true);
  });

  it("charges records that keep failing while other batches get done (the records are at fault)", () => {
    const { policy, clock } = setup();
    const batch = entries("1-0");
    policy.onResult(batch, result(["1-0"])); // first failure: nobody to blame yet
    clock.t += 5;
    policy.onResult(entries("2-0"), result()); // progress elsewhere
    clock.t += 5;
    const out = view(policy.onResult(batch, result(["1-0"])));
    expect(out).toEqual([{ kind: "retry", ids: ["1-0"], why: "failed", delayMs: 100 }]);
    expect(batch[0]?.failures).toBe(1);
  });

  it("closes the circuit after a success", () => {
    const { policy } = setup();
    policy.onUnavailable(entries("1-0"));
    policy.onUnavailable(entries("1-0"));
    expect(policy.pause).toBe(2 * PAUSE_MIN_MS);
    policy.onResult(entries("1-0"), result());
    expect(policy.pause).toBe(0);
  });

  it("retries after a Redis failure with a short backoff, charging nobody", () => {
    const { policy } = setup();
    const batch = entries("1-0");
    expect(view(policy.onRedisError(batch))).toEqual([
      { kind: "retry", ids: ["1-0"], why: "redis", delayMs: 100 },
    ]);
  });
});

describe("DeliveryPolicy: suspects and invalid entries", () => {
  it("runs an entry delivered more than maxRetries times alone", () => {
    const { policy } = setup(3);
    expect(policy.isSuspect(3)).toBe(false);
    expect(policy.isSuspect(4)).toBe(true);
  });

  it("dead-letters an invalid entry with one attempt", () => {
    const { policy } = setup();
    const [e] = entries("1-0");
    expect(policy.invalid(e as Delivery, 'entry has no "event" field')).toMatchObject({
      kind: "deadLetter",
      attempts: 1,
      reason: 'entry has no "event" field',
    });
  });
});
