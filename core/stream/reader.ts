/**
 * The stream reader (docs/reference.md, "Delivery"): the loop that joins a consumer group
 * ({@link StreamPort}, Redis behind it), the scoring function ({@link ScorerInvoker}) and the
 * delivery policy ({@link DeliveryPolicy}: acknowledge, dead-letter, retry, bisect, pause).
 *
 * What the loop itself owns: batching (by count, bytes and window), at most `maxInFlight`
 * invocations at once (it stops reading while they are busy), retries coming due, claiming
 * entries a dead reader left pending (XAUTOCLAIM after `claimIdleMs`), taking back its own
 * pending entries at start, reaping consumers long gone, and a drain on stop.
 */

import { Limiter } from "../lib/limiter.ts";
import type { Logger } from "../lib/logger.ts";
import { type Clock, sleep, systemClock } from "../lib/time.ts";
import {
  MAX_REQUEST_BYTES,
  REQUEST_OVERHEAD_BYTES,
  requestBytes,
  requestPayload,
  type ScoreResponse,
  type StreamRecord,
  serialiseRecord,
} from "./contract.ts";
import { deadLetterFields, inputRecord, type StreamEntry } from "./entry.ts";
import { FunctionInvocationError, InvokeUnavailableError } from "./errors.ts";
import { type Action, type Delivery, DeliveryPolicy } from "./policy.ts";
import type { StreamPort } from "./redis-stream.ts";

export interface ScorerInvoker {
  /**
   * Invokes the scoring function synchronously with a serialised `{ records }` body: ASCII
   * JSON bytes ({@link requestPayload}).
   * @throws FunctionInvocationError when the function failed as a whole
   * @throws InvokeUnavailableError when it could not be invoked
   */
  invoke(payload: Uint8Array): Promise<ScoreResponse>;
}

export interface ReaderOptions {
  /** The consumer group this reader reads as its consumer. */
  stream: StreamPort;
  invoker: ScorerInvoker;
  logger: Logger;
  /** The entry field holding the record (`STREAM_FIELD`). */
  field: string;
  dlqKey: string;
  dlqMaxLen: number;
  batchSize: number;
  batchWindowMs: number;
  maxInFlight: number;
  maxRetries: number;
  maxRecordBytes: number;
  claimIdleMs: number;
  /** Request body bound; below Lambda's 6 MB synchronous payload limit. */
  maxBatchBytes?: number;
  /** First retry delay; doubles per attempt up to retryMaxMs. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** How long one XREADGROUP blocks (bounds how fast stop() is noticed). */
  blockMs?: number;
  /**
   * Consumers idle this long with nothing pending are removed from the group (dead readers'
   * names pile up otherwise). Default: the larger of 10 × claimIdleMs and one hour.
   */
  consumerReapIdleMs?: number;
  clock?: Clock;
  random?: () => number;
  /** This reader's shard of the stream (`STREAM_SHARDS` > 1); passed on with every record. */
  shard?: number;
  /**
   * Dispatch slots shared with the readers of the other shards (one limiter of `maxInFlight`
   * for the whole process); default: this reader's own.
   */
  slots?: Limiter;
}

export interface ReaderStats {
  read: number;
  acked: number;
  deadLettered: number;
  retried: number;
  claimed: number;
  reapedConsumers: number;
  invocations: number;
  invocationErrors: number;
  inFlight: number;
  scheduledRetries: number;
  paused: boolean;
}

/** An entry as the reader holds it. */
interface Held extends Delivery {
  /** The record's text; undefined when the entry has no record field. */
  data: string | undefined;
  /** `origin_id` of a record redriven from the DLQ (see StreamRecord.originId). */
  originId: string | undefined;
}

/** Entries bound for one invocation, their serialised records and, while cut, the body's size. */
interface Batch {
  entries: Held[];
  parts: string[];
  bytes: number;
}

interface RetryBatch {
  entries: Held[];
  dueAt: number;
  /** Re-claim first (bumps the delivery count, drops entries acknowledged elsewhere). */
  reclaim: boolean;
}

/** How many times a batch still filling up looks for more entries within BATCH_WINDOW_MS. */
const WINDOW_STEPS = 5;
/** Own pending entries taken back at start, at most. */
const RECOVER_MAX = 10_000;
const CLAIM_CHUNK = 500;

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class StreamReader {
  private readonly o: Required<Omit<ReaderOptions, "clock" | "random" | "slots" | "shard">>;
  private readonly shard: number;
  private readonly clock: Clock;
  private readonly policy: DeliveryPolicy<Held>;
  private readonly slots: Limiter;
  private running = false;
  private retries: RetryBatch[] = [];
  private readonly held = new Set<string>();
  private lastClaimAt = 0;
  private lastReapAt = 0;
  private claimCursor = "0-0";
  private stopController = new AbortController();
  private loopDone: Promise<void> | undefined;
  private readonly stats_: Omit<ReaderStats, "inFlight" | "scheduledRetries" | "paused"> = {
    read: 0,
    acked: 0,
    deadLettered: 0,
    retried: 0,
    claimed: 0,
    reapedConsumers: 0,
    invocations: 0,
    invocationErrors: 0,
  };

  constructor(opts: ReaderOptions) {
    this.o = {
      maxBatchBytes: MAX_REQUEST_BYTES,
      retryBaseMs: 200,
      retryMaxMs: Math.max(1000, Math.min(30_000, Math.floor(opts.claimIdleMs / 2))),
      blockMs: 500,
      consumerReapIdleMs: Math.max(10 * opts.claimIdleMs, 3_600_000),
      ...opts,
    } as StreamReader["o"];
    this.clock = opts.clock ?? systemClock;
    this.shard = opts.shard ?? 0;
    this.policy = new DeliveryPolicy<Held>(
      {
        maxRetries: this.o.maxRetries,
        retryBaseMs: this.o.retryBaseMs,
        retryMaxMs: this.o.retryMaxMs,
      },
      () => this.clock.now(),
      opts.random ?? Math.random,
    );
    this.slots = opts.slots ?? new Limiter(this.o.maxInFlight);
  }

  /** Whether the read loop is running (false before start, after stop, or after a crash). */
  get isRunning(): boolean {
    return this.running;
  }

  stats(): ReaderStats {
    return {
      ...this.stats_,
      inFlight: this.slots.active,
      scheduledRetries: this.retries.reduce((n, b) => n + b.entries.length, 0),
      paused: this.policy.pausedFor() > 0,
    };
  }

  /** Creates the consumer group at `0` (with the stream) unless it exists. */
  async ensureGroup(): Promise<void> {
    if (await this.o.stream.ensureGroup()) {
      this.o.logger.info("consumer group created", {
        stream: this.o.stream.key,
        group: this.o.stream.group,
      });
    }
  }

  /** Starts the loop; resolves once the group exists and the loop runs. */
  async start(): Promise<void> {
    if (this.running) return;
    await this.ensureGroup();
    this.running = true;
    this.stopController = new AbortController();
    await this.recoverOwnPending();
    this.loopDone = this.loop().catch((err) => {
      this.o.logger.error("reader loop crashed", { error: errorMessage(err) });
      this.running = false;
    });
  }

  /**
   * Stops reading, waits for in-flight invocations to finish and be acknowledged (bounded
   * by `timeoutMs`). Entries scheduled for retry stay pending for the next reader to claim.
   */
  async stop(timeoutMs = 30_000): Promise<void> {
    this.running = false;
    this.stopController.abort();
    // Bounded as a whole: with Redis gone, a read the loop waits on never settles (the client
    // queues it until a reconnect that may never come), and the process must still stop.
    // The loop first: its last turn may still dispatch a batch it read, so in-flight work is
    // only counted once it has ended.
    const waited = new AbortController();
    await Promise.race([
      (this.loopDone ?? Promise.resolve()).then(() => this.slots.idle()),
      sleep(timeoutMs, waited.signal),
    ]);
    waited.abort();
  }

  // ---------------------------------------------------------------------------------------

  /**
   * Waits for a dispatch slot (they are shared by every shard's reader), then takes the next
   * batch — a retry come due, entries claimed from a dead reader, or new entries — and
   * dispatches it. Holding the slot while reading is the backpressure: the reader stops reading
   * while every slot is busy. A shard with nothing to read blocks for new entries without a
   * slot (so an idle shard never starves a busy one) and reads at most one batch ahead.
   */
  private async loop(): Promise<void> {
    let errorDelay = 100;
    while (this.running) {
      try {
        const paused = this.policy.pausedFor();
        if (paused > 0) {
          await sleep(paused, this.stopController.signal);
          continue;
        }
        if (!(await this.acquireUnlessStopped())) break;
        let batch: Held[] | undefined;
        try {
          batch =
            (await this.takeDueRetry()) ?? (await this.claimIdle()) ?? (await this.readNew(0));
        } catch (err) {
          this.slots.release();
          throw err;
        }
        if (!batch || batch.length === 0) {
          this.slots.release();
          // Nothing ready: wait for new entries without holding a slot, then for a slot. What
          // was read is dispatched even if stop() came meanwhile (the drain waits for it).
          batch = await this.readNew();
          if (!batch || batch.length === 0) continue;
          await this.slots.acquire();
        }
        this.dispatch(batch);
        errorDelay = 100;
      } catch (err) {
        const msg = errorMessage(err);
        if (msg.includes("NOGROUP")) {
          this.o.logger.warn("consumer group missing, recreating", { error: msg });
          await this.ensureGroup().catch(() => undefined);
        } else {
          this.o.logger.error("stream read failed", { error: msg, retry_in_ms: errorDelay });
        }
        await sleep(errorDelay, this.stopController.signal);
        errorDelay = Math.min(errorDelay * 2, 5000);
      }
    }
  }

  /** A dispatch slot, or false once stop() was called while waiting for one. */
  private async acquireUnlessStopped(): Promise<boolean> {
    if (this.slots.tryAcquire()) return true;
    const signal = this.stopController.signal;
    const slot = this.slots.acquire();
    const stopped = new Promise<false>((resolve) => {
      if (signal.aborted) resolve(false);
      signal.addEventListener("abort", () => resolve(false), { once: true });
    });
    const got = await Promise.race([slot, stopped]);
    if (got && this.running) return true;
    // Stopped: hand the slot back whenever it comes.
    void slot.then((ok) => ok && this.slots.release());
    return false;
  }

  /** Own pending entries from an earlier run under the same consumer name. */
  private async recoverOwnPending(): Promise<void> {
    const pending = await this.o.stream.ownPending(RECOVER_MAX);
    if (pending.length === 0) return;
    const counts = new Map(pending.map((p) => [p.id, p.deliveryCount]));
    const entries: Held[] = [];
    // XCLAIM bumps the delivery count.
    for (let i = 0; i < pending.length; i += CLAIM_CHUNK) {
      const claimed = await this.o.stream.claim(pending.slice(i, i + CLAIM_CHUNK).map((p) => p.id));
      for (const e of claimed) entries.push(this.hold(e, (counts.get(e.id) ?? 1) + 1));
    }
    this.o.logger.info("recovered own pending entries", { count: entries.length });
    const normal = this.isolateSuspects(entries);
    for (let i = 0; i < normal.length; i += this.o.batchSize) {
      this.retries.push({
        entries: normal.slice(i, i + this.o.batchSize),
        dueAt: 0,
        reclaim: false,
      });
    }
  }

  private hold(entry: StreamEntry, deliveryCount: number): Held {
    this.held.add(entry.id);
    const { data, originId } = inputRecord(entry, this.o.field);
    return {
      id: entry.id,
      data,
      originId,
      deliveryCount,
      failures: 0,
      lastError: undefined,
      lastFailedAt: 0,
    };
  }

  private async takeDueRetry(): Promise<Held[] | undefined> {
    const now = this.clock.now();
    const idx = this.retries.findIndex((b) => b.dueAt <= now);
    if (idx === -1) return undefined;
    const [batch] = this.retries.splice(idx, 1);
    if (!batch) return undefined;
    this.stats_.retried += batch.entries.length;
    if (!batch.reclaim) return batch.entries;
    // Claim to ourselves: bumps the delivery count, and drops entries another reader acked.
    let claimed: string[];
    try {
      claimed = await this.o.stream.claimIds(batch.entries.map((e) => e.id));
    } catch (err) {
      // Dropped, the batch's entries would stay pending and held (so never claimed) forever.
      this.schedule(batch.entries, this.policy.backoff(1), true);
      throw err;
    }
    const still = new Set(claimed);
    const out: Held[] = [];
    for (const e of batch.entries) {
      if (still.has(e.id)) {
        e.deliveryCount++;
        out.push(e);
      } else this.held.delete(e.id);
    }
    return out;
  }

  /** XAUTOCLAIM entries idle past claimIdleMs (their reader died), at most once a second. */
  private async claimIdle(): Promise<Held[] | undefined> {
    const now = this.clock.now();
    if (now - this.lastClaimAt < Math.min(1000, this.o.claimIdleMs)) return undefined;
    this.lastClaimAt = now;
    await this.reapIdleConsumers().catch((err) =>
      this.o.logger.warn("could not reap idle consumers", { error: errorMessage(err) }),
    );
    const page = await this.o.stream.autoclaim(
      this.o.claimIdleMs,
      this.claimCursor,
      this.o.batchSize,
    );
    this.claimCursor = page.cursor;
    if (page.deleted.length > 0) {
      this.o.logger.warn("pending entries were trimmed from the stream before processing", {
        count: page.deleted.length,
      });
    }
    const fresh = page.entries.filter((e) => e.fields !== null && !this.held.has(e.id));
    if (fresh.length === 0) return undefined;
    const counts = await this.o.stream.deliveryCounts(fresh.map((e) => e.id));
    this.stats_.claimed += fresh.length;
    this.o.logger.info("claimed idle pending entries", { count: fresh.length });
    return this.isolateSuspects(fresh.map((e) => this.hold(e, counts.get(e.id) ?? 1)));
  }

  /** Suspects (see DeliveryPolicy.isSuspect) run alone, as a retry of their own. */
  private isolateSuspects(entries: Held[]): Held[] {
    const normal: Held[] = [];
    for (const e of entries) {
      if (this.policy.isSuspect(e.deliveryCount)) {
        this.retries.push({ entries: [e], dueAt: 0, reclaim: false });
      } else normal.push(e);
    }
    return normal;
  }

  /** Removes consumers idle past consumerReapIdleMs with nothing pending (at most once a minute). */
  private async reapIdleConsumers(): Promise<void> {
    const now = this.clock.now();
    if (now - this.lastReapAt < 60_000) return;
    this.lastReapAt = now;
    for (const c of await this.o.stream.consumers()) {
      if (c.name === this.o.stream.consumer) continue;
      if (c.pending > 0 || c.idleMs < this.o.consumerReapIdleMs) continue;
      if (await this.o.stream.removeIdleConsumer(c.name)) {
        this.stats_.reapedConsumers++;
        this.o.logger.info("removed idle consumer", { consumer: c.name, idle_ms: c.idleMs });
      }
    }
  }

  /**
   * New entries, blocking up to `blockMs` (or until the next retry is due) for the first; with
   * `blockMs` 0, only what is there now. A batch still filling up waits BATCH_WINDOW_MS.
   */
  private async readNew(blockMs = this.o.blockMs): Promise<Held[] | undefined> {
    const nextDue = this.retries.reduce((m, b) => Math.min(m, b.dueAt), Number.POSITIVE_INFINITY);
    const block =
      blockMs === 0 ? undefined : Math.max(1, Math.min(blockMs, nextDue - this.clock.now()));
    const first = await this.o.stream.readNew(this.o.batchSize, block);
    if (first.length === 0) return undefined;
    let entries = first;
    if (entries.length < this.o.batchSize && this.o.batchWindowMs > 0) {
      // Whatever else arrives within the window rides along, but a batch that fills up goes at
      // once: look again a few times within the window instead of sleeping all of it.
      const until = this.clock.now() + this.o.batchWindowMs;
      const step = Math.max(1, Math.ceil(this.o.batchWindowMs / WINDOW_STEPS));
      while (entries.length < this.o.batchSize && !this.stopController.signal.aborted) {
        const left = until - this.clock.now();
        if (left <= 0) break;
        await sleep(Math.min(step, left), this.stopController.signal);
        entries = entries.concat(await this.o.stream.readNew(this.o.batchSize - entries.length));
      }
    }
    this.stats_.read += entries.length;
    return entries.map((e) => this.hold(e, 1));
  }

  /**
   * Dead-letters invalid entries and splits the rest into invocations below maxBatchBytes; the
   * caller holds one slot for the first, the rest acquire their own.
   */
  private dispatch(entries: Held[]): void {
    const invalid: Action<Held>[] = [];
    const batches: Batch[] = [];
    let current: Batch = { entries: [], parts: [], bytes: REQUEST_OVERHEAD_BYTES };
    // Only the first batch keeps its serialised records: the others wait for a slot and are
    // serialised again when they get one, so a read of large records never holds more than two
    // batches' bodies at once (readerWorstHeapBytes, checked by infra/stages.ts).
    const close = (b: Batch) => {
      if (batches.length > 0) b.parts = [];
      batches.push(b);
    };
    for (const e of entries) {
      if (e.data === undefined) {
        invalid.push(this.policy.invalid(e, `entry has no "${this.o.field}" field`));
        continue;
      }
      // Cheap upper bound (3 bytes per UTF-16 unit) before the exact count.
      if (
        e.data.length * 3 > this.o.maxRecordBytes &&
        Buffer.byteLength(e.data) > this.o.maxRecordBytes
      ) {
        invalid.push(
          this.policy.invalid(
            e,
            `record too large: over MAX_RECORD_BYTES (${this.o.maxRecordBytes} bytes)`,
          ),
        );
        continue;
      }
      // ASCII: its length is its size in bytes (the comma before it included).
      const part = serialiseRecord(toRecord(e, this.shard));
      const size = current.parts.length > 0 ? part.length + 1 : part.length;
      if (current.entries.length > 0 && current.bytes + size > this.o.maxBatchBytes) {
        close(current);
        current = { entries: [e], parts: [part], bytes: REQUEST_OVERHEAD_BYTES + part.length };
        continue;
      }
      current.entries.push(e);
      current.parts.push(part);
      current.bytes += size;
    }
    if (current.entries.length > 0) close(current);

    let slotUsed = false;
    if (invalid.length > 0) {
      slotUsed = true;
      void this.apply(invalid).finally(() => this.slots.release());
    }
    for (const b of batches) {
      if (slotUsed) {
        void this.slots.acquire().then((ok) => {
          if (ok) return this.runBatch(b);
        });
      } else {
        slotUsed = true;
        void this.runBatch(b);
      }
    }
    if (!slotUsed) this.slots.release();
  }

  /** One invocation; always releases its slot. */
  private async runBatch(batch: Batch): Promise<void> {
    const { entries } = batch;
    try {
      this.stats_.invocations++;
      let response: ScoreResponse;
      try {
        response = await this.o.invoker.invoke(this.payloadOf(batch));
      } catch (err) {
        this.stats_.invocationErrors++;
        await this.apply(this.onInvocationError(entries, err));
        return;
      }
      const rejected = new Map<string, string>();
      for (const r of response.rejected ?? []) rejected.set(r.itemIdentifier, r.reason);
      const failed = new Set<string>();
      for (const f of response.batchItemFailures ?? []) failed.add(f.itemIdentifier);
      await this.apply(this.policy.onResult(entries, { failed, rejected }));
    } finally {
      this.slots.release();
    }
  }

  /**
   * The batch's request body; its serialised records are let go once written (only the bytes
   * stay in flight). A batch that waited for its slot is serialised now (see dispatch).
   */
  private payloadOf(batch: Batch): Buffer {
    const parts =
      batch.parts.length > 0
        ? batch.parts
        : batch.entries.map((e) => serialiseRecord(toRecord(e, this.shard)));
    batch.parts = [];
    return requestPayload(parts, requestBytes(parts.map((p) => p.length)));
  }

  private onInvocationError(entries: Held[], err: unknown): Action<Held>[] {
    const msg = errorMessage(err);
    if (err instanceof FunctionInvocationError) {
      if (entries.length > 1) {
        this.o.logger.warn("scorer failed on a batch, bisecting", {
          records: entries.length,
          error: msg,
        });
      }
      return this.policy.onFunctionError(entries, msg);
    }
    // Unreachable, throttled, or a service error: nobody's fault, back off.
    const actions = this.policy.onUnavailable(entries);
    this.o.logger.warn("scorer unavailable, backing off", {
      error: msg,
      pause_ms: this.policy.pause,
    });
    if (!(err instanceof InvokeUnavailableError)) {
      this.o.logger.error("unexpected invoker error", { error: msg });
    }
    return actions;
  }

  /** Carries out the policy's decisions. Redis trouble: the entries stay pending and are retried. */
  private async apply(actions: Action<Held>[]): Promise<void> {
    for (const a of actions) {
      try {
        if (a.kind === "ack") {
          await this.o.stream.ack(a.entries.map((e) => e.id));
          this.stats_.acked += a.entries.length;
          for (const e of a.entries) this.held.delete(e.id);
        } else if (a.kind === "deadLetter") {
          await this.deadLetter(a.entry, a.reason, a.attempts);
        } else {
          if (a.why === "paused") {
            this.o.logger.warn("pausing dispatch", {
              reason: `all ${a.entries.length} records failed or the scorer is unavailable`,
              pause_ms: this.policy.pause,
            });
          }
          this.schedule(a.entries, a.delayMs, true);
        }
      } catch (err) {
        const entries = a.kind === "deadLetter" ? [a.entry] : a.entries;
        this.o.logger.error("could not settle entries", {
          error: errorMessage(err),
          records: entries.length,
        });
        for (const r of this.policy.onRedisError(entries)) {
          if (r.kind === "retry") this.schedule(r.entries, r.delayMs, true);
        }
      }
    }
  }

  private schedule(entries: Held[], delayMs: number, reclaim: boolean): void {
    if (entries.length === 0) return;
    this.retries.push({ entries, dueAt: this.clock.now() + delayMs, reclaim });
  }

  private async deadLetter(e: Held, reason: string, attempts: number): Promise<void> {
    const fields = deadLetterFields(
      {
        reason,
        attempts,
        entryId: e.id,
        originId: e.originId,
        stream: this.o.stream.key,
        group: this.o.stream.group,
        consumer: this.o.stream.consumer,
        failedAt: new Date(this.clock.now()).toISOString(),
        record: e.data,
      },
      this.o.field,
    );
    const added = await this.o.stream.deadLetter(e.id, this.o.dlqKey, this.o.dlqMaxLen, fields);
    this.held.delete(e.id);
    if (added) {
      this.stats_.deadLettered++;
      this.o.logger.warn("record dead-lettered", { stream_id: e.id, reason, attempts });
    }
  }
}

function toRecord(e: Held, shard: number): StreamRecord {
  const r: StreamRecord = { id: e.id, data: e.data as string, deliveryCount: e.deliveryCount };
  if (e.originId !== undefined) r.originId = e.originId;
  if (shard > 0) r.shard = shard;
  return r;
}
