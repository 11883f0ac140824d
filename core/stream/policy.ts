/**
 * The delivery policy of the stream reader (docs/reference.md, "Delivery"), as a pure state
 * machine: what happened to an invocation in, what to do with its entries out — acknowledge,
 * dead-letter, retry (after a delay), bisect, pause. No Redis, no timers: the clock and the
 * random draw are injected, so every rule is unit-tested on its own (policy.test.ts).
 *
 * The rules, modelled on AWS Lambda event source mappings:
 * - an entry is acknowledged only when the scorer reports it done;
 * - a rejected entry (invalid record, point refused for good) is dead-lettered at once;
 * - a failed entry is retried with backoff; after `maxRetries` failed invocations it is
 *   dead-lettered with its reason and attempt count;
 * - a batch whose invocation failed as a whole is bisected (neither half is charged an
 *   attempt) until a poison record is alone, and only then charged;
 * - failures no record can be blamed for — the scorer unreachable or throttled, or every
 *   record of a batch failing while no other batch made progress since (a dependency is down)
 *   — charge nothing: dispatch pauses (250 ms doubling to 30 s) and the entries are retried;
 * - entries delivered more than `maxRetries` times may be what killed earlier readers: they
 *   run alone (see {@link DeliveryPolicy.isSuspect}); deliveries alone never dead-letter.
 */
import { backoffMs } from "../lib/backoff.ts";

/** The delivery state the policy keeps on each entry it is asked about. */
export interface Delivery {
  id: string;
  /** How many times the stream delivered this entry (1 on first delivery). */
  deliveryCount: number;
  /** Invocations of this entry that failed in a way that counts against it. */
  failures: number;
  lastError: string | undefined;
  /** When it last failed (epoch ms; 0 = never). */
  lastFailedAt: number;
}

export type Action<E extends Delivery> =
  | { kind: "ack"; entries: E[] }
  | { kind: "deadLetter"; entry: E; reason: string; attempts: number }
  /** Run these entries again after `delayMs` (re-claimed first, so acknowledged ones drop out). */
  | { kind: "retry"; entries: E[]; delayMs: number; why: "failed" | "bisect" | "paused" | "redis" };

/** What the scorer answered for a batch. */
export interface BatchResult {
  failed: ReadonlySet<string>;
  /** Entry ID → reason. */
  rejected: ReadonlyMap<string, string>;
}

export interface PolicyOptions {
  maxRetries: number;
  /** First retry delay ceiling; doubles per attempt up to retryMaxMs. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** First pause after an outage; doubles per further outage up to pauseMaxMs. */
  pauseMinMs?: number;
  pauseMaxMs?: number;
}

export const PAUSE_MIN_MS = 250;
export const PAUSE_MAX_MS = 30_000;

export class DeliveryPolicy<E extends Delivery = Delivery> {
  private pauseMs = 0;
  private pausedUntil = 0;
  /** Last time a batch had a record done: proof the scorer's dependencies work. */
  private lastProgressAt = 0;
  private readonly pauseMin: number;
  private readonly pauseMax: number;

  constructor(
    private readonly o: PolicyOptions,
    private readonly now: () => number,
    private readonly random: () => number,
  ) {
    this.pauseMin = o.pauseMinMs ?? PAUSE_MIN_MS;
    this.pauseMax = o.pauseMaxMs ?? PAUSE_MAX_MS;
  }

  /** Milliseconds dispatch stays paused (0 when it is not). */
  pausedFor(): number {
    return Math.max(0, this.pausedUntil - this.now());
  }

  /** The current pause length (0 after a success). */
  get pause(): number {
    return this.pauseMs;
  }

  /** An entry delivered this often runs alone (it may have crashed earlier readers). */
  isSuspect(deliveryCount: number): boolean {
    return deliveryCount > this.o.maxRetries;
  }

  /** Backoff before retry number `attempt`. */
  backoff(attempt: number): number {
    return backoffMs(
      attempt,
      { baseMs: this.o.retryBaseMs, maxMs: this.o.retryMaxMs },
      this.random(),
    );
  }

  /** An entry that is invalid before any invocation (no record, too large): dead-letter it. */
  invalid(entry: E, reason: string): Action<E> {
    return { kind: "deadLetter", entry, reason, attempts: Math.max(entry.failures, 1) };
  }

  /** The scorer answered: acknowledge what is done, dead-letter what it rejected, retry the rest. */
  onResult(entries: E[], result: BatchResult): Action<E>[] {
    const actions: Action<E>[] = [];
    const done: E[] = [];
    const failed: E[] = [];
    let rejected = 0;
    for (const e of entries) {
      const reason = result.rejected.get(e.id);
      if (reason !== undefined) {
        rejected++;
        actions.push({ kind: "deadLetter", entry: e, reason, attempts: Math.max(e.failures, 1) });
      } else if (result.failed.has(e.id)) failed.push(e);
      else done.push(e);
    }
    if (done.length > 0) {
      this.lastProgressAt = this.now();
      actions.unshift({ kind: "ack", entries: done });
    }
    if (failed.length === 0) {
      this.pauseMs = 0;
      return actions;
    }
    if (done.length === 0 && rejected < entries.length) {
      // Every scorable record failed. If other batches got records done since these last
      // failed, the dependencies work and these records are at fault: charge them. Otherwise
      // a dependency is down and no record is to blame: pause and probe (circuit breaker).
      const firstFailure = Math.min(...failed.map((e) => e.lastFailedAt));
      if (firstFailure === 0 || this.lastProgressAt <= firstFailure) {
        const now = this.now();
        for (const e of failed) e.lastFailedAt = now;
        this.openCircuit();
        actions.push({ kind: "retry", entries: failed, delayMs: this.pauseMs, why: "paused" });
        return actions;
      }
    }
    this.pauseMs = 0;
    actions.push(...this.charge(failed, "scorer reported the record as failed"));
    return actions;
  }

  /**
   * The function ran and failed as a whole (handler error, timeout, malformed answer): bisect a
   * batch, charge a record that is alone.
   */
  onFunctionError(entries: E[], message: string): Action<E>[] {
    this.pauseMs = 0;
    if (entries.length > 1) {
      const mid = Math.ceil(entries.length / 2);
      for (const e of entries) e.lastError = message;
      const delayMs = this.backoff(1);
      return [
        { kind: "retry", entries: entries.slice(0, mid), delayMs, why: "bisect" },
        { kind: "retry", entries: entries.slice(mid), delayMs, why: "bisect" },
      ];
    }
    return this.charge(entries, `scorer failed: ${message}`);
  }

  /** The invocation never reached the function, or was throttled: nobody's fault; pause. */
  onUnavailable(entries: E[]): Action<E>[] {
    this.openCircuit();
    return [{ kind: "retry", entries, delayMs: this.pauseMs, why: "paused" }];
  }

  /** Redis failed while settling or dead-lettering: the entries stay pending; retry them. */
  onRedisError(entries: E[]): Action<E>[] {
    return [{ kind: "retry", entries, delayMs: this.backoff(1), why: "redis" }];
  }

  private charge(entries: E[], reason: string): Action<E>[] {
    const actions: Action<E>[] = [];
    const again: E[] = [];
    const now = this.now();
    for (const e of entries) {
      e.failures++;
      e.lastFailedAt = now;
      e.lastError = reason;
      if (e.failures >= this.o.maxRetries) {
        actions.push({
          kind: "deadLetter",
          entry: e,
          reason: `${reason} (gave up after ${e.failures} attempts)`,
          attempts: e.failures,
        });
      } else again.push(e);
    }
    if (again.length > 0) {
      const worst = Math.max(...again.map((e) => e.failures));
      actions.push({ kind: "retry", entries: again, delayMs: this.backoff(worst), why: "failed" });
    }
    return actions;
  }

  private openCircuit(): void {
    this.pauseMs = this.pauseMs === 0 ? this.pauseMin : Math.min(this.pauseMs * 2, this.pauseMax);
    this.pausedUntil = this.now() + this.pauseMs;
  }
}
