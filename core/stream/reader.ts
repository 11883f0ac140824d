/**
 * The stream reader (SPEC §5): a Redis Streams consumer with the guarantees of an AWS Lambda
 * event source mapping.
 *
 * - Consumer group created at `0` if missing; batches by count, bytes and window; at most
 *   `maxInFlight` invocations (it stops reading while they are busy).
 * - An entry is acknowledged only when the scorer reports it done; rejected entries are
 *   dead-lettered (DLQ XADD + XACK in one script, so each appears in the DLQ exactly once).
 * - Failed entries stay pending and are retried with backoff; a batch whose invocation failed
 *   as a whole is bisected until a poison record is alone; a record that failed alone
 *   `maxRetries` times is dead-lettered with its reason and attempt count.
 * - Outages (scorer unreachable or throttled, every record of a batch failing) count against
 *   no record: the reader pauses, doubling the pause, and probes again (circuit breaker).
 * - Entries left pending by a dead consumer are claimed (XAUTOCLAIM) after `claimIdleMs`.
 */
import type { Redis } from "ioredis";
import type { Logger } from "../lib/logger.ts";
import type { ScoreResponse, StreamRecord } from "./contract.ts";
import { FunctionInvocationError, InvokeUnavailableError } from "./errors.ts";

export interface ScorerInvoker {
  /**
   * Invokes the scoring function synchronously with a serialised `{ records }` body.
   * @throws FunctionInvocationError when the function failed as a whole
   * @throws InvokeUnavailableError when it could not be invoked
   */
  invoke(body: string, records: readonly StreamRecord[]): Promise<ScoreResponse>;
}

export interface ReaderOptions {
  /** Commands: ack, dead-letter, claim, info. */
  redis: Redis;
  /** A dedicated connection for the blocking XREADGROUP (it stalls everything else on its connection). */
  blockingRedis: Redis;
  invoker: ScorerInvoker;
  logger: Logger;
  streamKey: string;
  field: string;
  group: string;
  consumer: string;
  batchSize: number;
  batchWindowMs: number;
  maxInFlight: number;
  maxRetries: number;
  maxRecordBytes: number;
  dlqKey: string;
  dlqMaxLen: number;
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
  now?: () => number;
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
interface Held {
  id: string;
  /** The STREAM_FIELD value; undefined when the entry has no such field. */
  data: string | undefined;
  /** `origin_id` of a record redriven from the DLQ (see StreamRecord.originId). */
  originId: string | undefined;
  deliveryCount: number;
  /** Invocations of this record that failed in a way that counts (alone, or beside successes). */
  failures: number;
  lastError: string | undefined;
  /** When this record last failed (0 = never). */
  lastFailedAt: number;
}

interface RetryBatch {
  entries: Held[];
  dueAt: number;
  /** Re-read through XCLAIM first (bumps the delivery count, drops entries acked elsewhere). */
  reclaim: boolean;
}

export const DEFAULT_MAX_BATCH_BYTES = 5_500_000;

// KEYS[1] stream, KEYS[2] dlq; ARGV[1] group, ARGV[2] entry id, ARGV[3] dlq maxlen, ARGV[4..] fields.
// Dead-letters only if this call removed the entry from the PEL: at most one DLQ entry per
// entry, whichever reader (or crash-restarted reader) gets there.
const DEAD_LETTER_SCRIPT = `
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
  return 1
end
return 0
`;

// KEYS[1] stream; ARGV[1] group, ARGV[2] consumer. Deletes the consumer only if it has nothing
// pending (checked in the same atomic step), so no pending entry loses its owner record.
const REAP_CONSUMER_SCRIPT = `
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
`;

/** Entry field naming the stream entry a redriven record first arrived as. */
export const ORIGIN_FIELD = "origin_id";

const PAUSE_MIN_MS = 250;
/** How many times a batch still filling up looks for more entries within BATCH_WINDOW_MS. */
const WINDOW_STEPS = 5;
const PAUSE_MAX_MS = 30_000;

type RawEntry = [id: string, fields: string[] | null];

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

function fieldValue(fields: string[] | null, name: string): string | undefined {
  if (!fields) return undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class StreamReader {
  private readonly o: Required<Omit<ReaderOptions, "now">> & { now: () => number };
  private running = false;
  private inFlight = 0;
  private slotWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  private retries: RetryBatch[] = [];
  private readonly held = new Set<string>();
  private pauseMs = 0;
  /** Last time a batch had a record done: proof the scorer's dependencies work. */
  private lastProgressAt = 0;
  private pausedUntil = 0;
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
      maxBatchBytes: DEFAULT_MAX_BATCH_BYTES,
      retryBaseMs: 200,
      retryMaxMs: Math.max(1000, Math.min(30_000, Math.floor(opts.claimIdleMs / 2))),
      blockMs: 500,
      consumerReapIdleMs: Math.max(10 * opts.claimIdleMs, 3_600_000),
      now: Date.now,
      ...opts,
    } as StreamReader["o"];
    this.o.redis.defineCommand("wafDeadLetter", { numberOfKeys: 2, lua: DEAD_LETTER_SCRIPT });
    this.o.redis.defineCommand("wafReapConsumer", { numberOfKeys: 1, lua: REAP_CONSUMER_SCRIPT });
  }

  /** Whether the read loop is running (false before start, after stop, or after a crash). */
  get isRunning(): boolean {
    return this.running;
  }

  stats(): ReaderStats {
    return {
      ...this.stats_,
      inFlight: this.inFlight,
      scheduledRetries: this.retries.reduce((n, b) => n + b.entries.length, 0),
      paused: this.o.now() < this.pausedUntil,
    };
  }

  /** Creates the consumer group at `0` (with the stream) unless it exists. */
  async ensureGroup(): Promise<void> {
    try {
      await this.o.redis.xgroup("CREATE", this.o.streamKey, this.o.group, "0", "MKSTREAM");
      this.o.logger.info("consumer group created", {
        stream: this.o.streamKey,
        group: this.o.group,
      });
    } catch (err) {
      if (!errorMessage(err).includes("BUSYGROUP")) throw err;
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
    for (const w of this.slotWaiters.splice(0)) w();
    await this.loopDone;
    const idle = new Promise<void>((resolve) => {
      if (this.inFlight === 0) resolve();
      else this.idleWaiters.push(resolve);
    });
    await Promise.race([idle, sleep(timeoutMs)]);
  }

  // ---------------------------------------------------------------------------------------

  private async loop(): Promise<void> {
    let errorDelay = 100;
    while (this.running) {
      try {
        await this.acquireSlot();
        if (!this.running) {
          this.releaseSlot();
          break;
        }
        const now = this.o.now();
        if (now < this.pausedUntil) {
          this.releaseSlot();
          await sleep(this.pausedUntil - now, this.stopController.signal);
          continue;
        }
        const batch =
          (await this.takeDueRetry()) ?? (await this.claimIdle()) ?? (await this.readNew());
        if (!batch || batch.length === 0) {
          this.releaseSlot();
          continue;
        }
        this.dispatchSplit(batch);
        errorDelay = 100;
      } catch (err) {
        this.releaseSlot();
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

  private acquireSlot(): Promise<void> {
    if (this.inFlight < this.o.maxInFlight || !this.running) {
      this.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.slotWaiters.push(() => {
        this.inFlight++;
        resolve();
      });
    });
  }

  private releaseSlot(): void {
    this.inFlight--;
    const next = this.slotWaiters.shift();
    if (next) next();
    else if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Own pending entries from an earlier run under the same consumer name. */
  private async recoverOwnPending(): Promise<void> {
    const pending = (await this.o.redis.xpending(
      this.o.streamKey,
      this.o.group,
      "-",
      "+",
      10_000,
      this.o.consumer,
    )) as Array<[string, string, number, number]>;
    if (pending.length === 0) return;
    const counts = new Map(pending.map(([id, , , count]) => [id, count]));
    const entries: Held[] = [];
    // Ids are listed in order; claim them in chunks (XCLAIM bumps the delivery count).
    for (let i = 0; i < pending.length; i += 500) {
      const ids = pending.slice(i, i + 500).map(([id]) => id);
      const claimed = (await this.o.redis.xclaim(
        this.o.streamKey,
        this.o.group,
        this.o.consumer,
        0,
        ...ids,
      )) as RawEntry[];
      for (const [id, fields] of claimed) {
        entries.push(this.hold(id, fields, (counts.get(id) ?? 1) + 1));
      }
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

  private hold(id: string, fields: string[] | null, deliveryCount: number): Held {
    this.held.add(id);
    return {
      id,
      data: fieldValue(fields, this.o.field),
      originId: fieldValue(fields, ORIGIN_FIELD),
      deliveryCount,
      failures: 0,
      lastError: undefined,
      lastFailedAt: 0,
    };
  }

  private async takeDueRetry(): Promise<Held[] | undefined> {
    const now = this.o.now();
    const idx = this.retries.findIndex((b) => b.dueAt <= now);
    if (idx === -1) return undefined;
    const [batch] = this.retries.splice(idx, 1);
    if (!batch) return undefined;
    this.stats_.retried += batch.entries.length;
    if (!batch.reclaim) return batch.entries;
    // XCLAIM to ourselves: bumps the delivery count, and drops entries another reader acked.
    let claimed: string[];
    try {
      claimed = (await this.o.redis.xclaim(
        this.o.streamKey,
        this.o.group,
        this.o.consumer,
        0,
        ...batch.entries.map((e) => e.id),
        "JUSTID",
      )) as string[];
    } catch (err) {
      // Dropped, the batch's entries would stay pending and held (so never claimed) forever.
      this.schedule(batch.entries, this.backoff(1), true);
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
    const now = this.o.now();
    if (now - this.lastClaimAt < Math.min(1000, this.o.claimIdleMs)) return undefined;
    this.lastClaimAt = now;
    await this.reapIdleConsumers().catch((err) =>
      this.o.logger.warn("could not reap idle consumers", { error: errorMessage(err) }),
    );
    const [cursor, entries, deleted] = (await this.o.redis.xautoclaim(
      this.o.streamKey,
      this.o.group,
      this.o.consumer,
      this.o.claimIdleMs,
      this.claimCursor,
      "COUNT",
      this.o.batchSize,
    )) as [string, RawEntry[], string[]];
    this.claimCursor = cursor;
    if (deleted?.length) {
      this.o.logger.warn("pending entries were trimmed from the stream before processing", {
        count: deleted.length,
      });
    }
    const fresh = entries.filter(([id, fields]) => fields !== null && !this.held.has(id));
    if (fresh.length === 0) return undefined;
    const counts = await this.deliveryCounts(fresh.map(([id]) => id));
    this.stats_.claimed += fresh.length;
    this.o.logger.info("claimed idle pending entries", { count: fresh.length });
    return this.isolateSuspects(
      fresh.map(([id, fields]) => this.hold(id, fields, counts.get(id) ?? 1)),
    );
  }

  /**
   * Entries delivered more than maxRetries times may be what killed earlier readers: they run
   * alone, so a poison record is charged on its own and never takes its batch down with it.
   * Deliveries alone never dead-letter a record (a valid record held by crashing readers stays
   * valid); only failed invocations do.
   */
  private isolateSuspects(entries: Held[]): Held[] {
    const normal: Held[] = [];
    for (const e of entries) {
      if (e.deliveryCount > this.o.maxRetries) {
        this.retries.push({ entries: [e], dueAt: 0, reclaim: false });
      } else normal.push(e);
    }
    return normal;
  }

  /** Removes consumers idle past consumerReapIdleMs with nothing pending (at most once a minute). */
  private async reapIdleConsumers(): Promise<void> {
    const now = this.o.now();
    if (now - this.lastReapAt < 60_000) return;
    this.lastReapAt = now;
    const rows = (await this.o.redis.xinfo(
      "CONSUMERS",
      this.o.streamKey,
      this.o.group,
    )) as unknown[][];
    for (const row of rows) {
      const c: Record<string, unknown> = {};
      for (let i = 0; i + 1 < row.length; i += 2) c[String(row[i])] = row[i + 1];
      const name = String(c.name);
      if (name === this.o.consumer) continue;
      if (Number(c.pending) > 0 || Number(c.idle) < this.o.consumerReapIdleMs) continue;
      const res = (await (this.o.redis as unknown as ReapClient).wafReapConsumer(
        this.o.streamKey,
        this.o.group,
        name,
      )) as number;
      if (res >= 0) {
        this.stats_.reapedConsumers++;
        this.o.logger.info("removed idle consumer", { consumer: name, idle_ms: Number(c.idle) });
      }
    }
  }

  private async deliveryCounts(ids: string[]): Promise<Map<string, number>> {
    const first = ids[0];
    const last = ids[ids.length - 1];
    if (!first || !last) return new Map();
    const rows = (await this.o.redis.xpending(
      this.o.streamKey,
      this.o.group,
      first,
      last,
      ids.length + 100,
      this.o.consumer,
    )) as Array<[string, string, number, number]>;
    return new Map(rows.map(([id, , , count]) => [id, count]));
  }

  private async readNew(): Promise<Held[] | undefined> {
    const nextDue = this.retries.reduce((m, b) => Math.min(m, b.dueAt), Number.POSITIVE_INFINITY);
    // BLOCK takes whole milliseconds; backoff() has a fractional jitter.
    const block = Math.max(1, Math.min(this.o.blockMs, Math.ceil(nextDue - this.o.now())));
    const first = await this.xread(this.o.batchSize, block);
    if (first.length === 0) return undefined;
    let entries = first;
    if (entries.length < this.o.batchSize && this.o.batchWindowMs > 0) {
      // Whatever else arrives within the window rides along, but a batch that fills up goes at
      // once: look again a few times within the window instead of sleeping all of it.
      const until = this.o.now() + this.o.batchWindowMs;
      const step = Math.max(1, Math.ceil(this.o.batchWindowMs / WINDOW_STEPS));
      while (entries.length < this.o.batchSize && !this.stopController.signal.aborted) {
        const left = until - this.o.now();
        if (left <= 0) break;
        await sleep(Math.min(step, left), this.stopController.signal);
        const more = await this.xread(this.o.batchSize - entries.length, undefined);
        entries = entries.concat(more);
      }
    }
    this.stats_.read += entries.length;
    return entries.map(([id, fields]) => this.hold(id, fields, 1));
  }

  private async xread(count: number, blockMs: number | undefined): Promise<RawEntry[]> {
    const args: Array<string | number> = ["GROUP", this.o.group, this.o.consumer, "COUNT", count];
    if (blockMs !== undefined) args.push("BLOCK", blockMs);
    args.push("STREAMS", this.o.streamKey, ">");
    const res = (await (this.o.blockingRedis.xreadgroup as (...a: unknown[]) => Promise<unknown>)(
      ...args,
    )) as Array<[string, RawEntry[]]> | null;
    return res?.[0]?.[1] ?? [];
  }

  /**
   * Splits entries into invocations below maxBatchBytes and dispatches them; the caller holds
   * one slot for the first, the rest acquire their own.
   */
  private dispatchSplit(entries: Held[]): void {
    const invalid: Array<{ entry: Held; reason: string }> = [];
    const batches: Array<{ entries: Held[]; parts: string[] }> = [];
    let current: { entries: Held[]; parts: string[] } = { entries: [], parts: [] };
    let bytes = 20;
    for (const e of entries) {
      if (e.data === undefined) {
        invalid.push({ entry: e, reason: `entry has no "${this.o.field}" field` });
        continue;
      }
      // Cheap upper bound (3 bytes per UTF-16 unit) before the exact count.
      if (
        e.data.length * 3 > this.o.maxRecordBytes &&
        Buffer.byteLength(e.data) > this.o.maxRecordBytes
      ) {
        invalid.push({
          entry: e,
          reason: `record too large: over MAX_RECORD_BYTES (${this.o.maxRecordBytes} bytes)`,
        });
        continue;
      }
      const record: StreamRecord = {
        id: e.id,
        data: e.data,
        deliveryCount: e.deliveryCount,
        ...(e.originId === undefined ? {} : { originId: e.originId }),
      };
      const part = JSON.stringify(record);
      const size = Buffer.byteLength(part) + 1;
      if (current.entries.length > 0 && bytes + size > this.o.maxBatchBytes) {
        batches.push(current);
        current = { entries: [], parts: [] };
        bytes = 20;
      }
      current.entries.push(e);
      current.parts.push(part);
      bytes += size;
    }
    if (current.entries.length > 0) batches.push(current);

    let slotUsed = false;
    if (invalid.length > 0) {
      slotUsed = true;
      void this.settleInvalid(invalid)
        .catch((err) => {
          // Redis trouble: the entries stay pending; dead-letter them on a later pass.
          this.o.logger.error("could not dead-letter invalid entries", {
            error: errorMessage(err),
            records: invalid.length,
          });
          this.schedule(
            invalid.map((i) => i.entry),
            this.backoff(1),
            true,
          );
        })
        .finally(() => this.releaseSlot());
    }
    for (const b of batches) {
      if (slotUsed) {
        void this.acquireSlot().then(() => this.runBatch(b.entries, b.parts));
      } else {
        slotUsed = true;
        void this.runBatch(b.entries, b.parts);
      }
    }
    if (!slotUsed) this.releaseSlot();
  }

  private async settleInvalid(invalid: Array<{ entry: Held; reason: string }>): Promise<void> {
    await Promise.all(invalid.map(({ entry, reason }) => this.deadLetter(entry, reason)));
  }

  /** One invocation; always releases its slot. */
  private async runBatch(entries: Held[], parts?: string[]): Promise<void> {
    try {
      const records: StreamRecord[] = entries.map((e) => ({
        id: e.id,
        data: e.data as string,
        deliveryCount: e.deliveryCount,
        ...(e.originId === undefined ? {} : { originId: e.originId }),
      }));
      const body = `{"records":[${(parts ?? records.map((r) => JSON.stringify(r))).join(",")}]}`;
      this.stats_.invocations++;
      let response: ScoreResponse;
      try {
        response = await this.o.invoker.invoke(body, records);
      } catch (err) {
        this.stats_.invocationErrors++;
        await this.onInvocationError(entries, err);
        return;
      }
      await this.settle(entries, response);
    } catch (err) {
      // Redis trouble while settling: the entries stay pending; retry them later.
      this.o.logger.error("could not settle batch", {
        error: errorMessage(err),
        records: entries.length,
      });
      this.schedule(entries, this.backoff(1), true);
    } finally {
      this.releaseSlot();
    }
  }

  private async settle(entries: Held[], response: ScoreResponse): Promise<void> {
    const byId = new Map(entries.map((e) => [e.id, e]));
    const rejected = new Map<string, string>();
    for (const r of response.rejected ?? [])
      if (byId.has(r.itemIdentifier)) rejected.set(r.itemIdentifier, r.reason);
    const failed = new Set<string>();
    for (const f of response.batchItemFailures ?? []) {
      if (byId.has(f.itemIdentifier) && !rejected.has(f.itemIdentifier))
        failed.add(f.itemIdentifier);
    }
    const done = entries.filter((e) => !rejected.has(e.id) && !failed.has(e.id));

    if (done.length > 0) {
      this.lastProgressAt = this.o.now();
      await this.o.redis.xack(this.o.streamKey, this.o.group, ...done.map((e) => e.id));
      this.stats_.acked += done.length;
      for (const e of done) this.held.delete(e.id);
    }
    await Promise.all(
      [...rejected].map(([id, reason]) => this.deadLetter(byId.get(id) as Held, reason)),
    );

    if (failed.size === 0) {
      this.pauseMs = 0;
      return;
    }
    const failedEntries = entries.filter((e) => failed.has(e.id));
    if (done.length === 0 && rejected.size < entries.length) {
      // Every scorable record failed. If other batches got records done since these last
      // failed, the dependencies work and these records are at fault: charge them. Otherwise a
      // dependency is down and no record is to blame: pause and probe (circuit breaker).
      const sinceFirstFailure = Math.min(...failedEntries.map((e) => e.lastFailedAt));
      if (sinceFirstFailure === 0 || this.lastProgressAt <= sinceFirstFailure) {
        for (const e of failedEntries) e.lastFailedAt = this.o.now();
        this.openCircuit(`all ${failedEntries.length} records failed`);
        this.schedule(failedEntries, this.pauseMs, true);
        return;
      }
    }
    this.pauseMs = 0;
    await this.countFailures(failedEntries, "scorer reported the record as failed");
  }

  private async onInvocationError(entries: Held[], err: unknown): Promise<void> {
    const msg = errorMessage(err);
    if (err instanceof FunctionInvocationError) {
      this.pauseMs = 0;
      if (entries.length > 1) {
        // Bisect: a poison record hides in one half; neither half is charged an attempt.
        const mid = Math.ceil(entries.length / 2);
        this.o.logger.warn("scorer failed on a batch, bisecting", {
          records: entries.length,
          error: msg,
        });
        for (const e of entries) e.lastError = msg;
        const delay = this.backoff(1);
        this.schedule(entries.slice(0, mid), delay, true);
        this.schedule(entries.slice(mid), delay, true);
        return;
      }
      await this.countFailures(entries, `scorer failed: ${msg}`);
      return;
    }
    // Unreachable, throttled, or a service error: nobody's fault, back off.
    this.openCircuit(msg);
    this.o.logger.warn("scorer unavailable, backing off", { error: msg, pause_ms: this.pauseMs });
    this.schedule(entries, this.pauseMs, true);
    if (!(err instanceof InvokeUnavailableError)) {
      this.o.logger.error("unexpected invoker error", { error: msg });
    }
  }

  private async countFailures(entries: Held[], reason: string): Promise<void> {
    const again: Held[] = [];
    for (const e of entries) {
      e.failures++;
      e.lastFailedAt = this.o.now();
      e.lastError = reason;
      if (e.failures >= this.o.maxRetries) {
        await this.deadLetter(e, `${reason} (gave up after ${e.failures} attempts)`);
      } else again.push(e);
    }
    if (again.length > 0) {
      const worst = Math.max(...again.map((e) => e.failures));
      this.schedule(again, this.backoff(worst), true);
    }
  }

  private openCircuit(why: string): void {
    this.pauseMs = this.pauseMs === 0 ? PAUSE_MIN_MS : Math.min(this.pauseMs * 2, PAUSE_MAX_MS);
    this.pausedUntil = this.o.now() + this.pauseMs;
    this.o.logger.warn("pausing dispatch", { reason: why, pause_ms: this.pauseMs });
  }

  private backoff(attempt: number): number {
    const base = this.o.retryBaseMs * 2 ** Math.max(0, attempt - 1);
    const jitter = Math.random() * this.o.retryBaseMs;
    return Math.min(this.o.retryMaxMs, base + jitter);
  }

  private schedule(entries: Held[], delayMs: number, reclaim: boolean): void {
    if (entries.length === 0) return;
    this.retries.push({ entries, dueAt: this.o.now() + delayMs, reclaim });
  }

  private async deadLetter(e: Held, reason: string): Promise<void> {
    const attempts = Math.max(e.failures, 1);
    const fields: string[] = [
      "reason",
      reason,
      "attempts",
      String(attempts),
      "entry_id",
      e.id,
      "stream",
      this.o.streamKey,
      "group",
      this.o.group,
      "consumer",
      this.o.consumer,
      "failed_at",
      new Date(this.o.now()).toISOString(),
    ];
    if (e.originId !== undefined) fields.push(ORIGIN_FIELD, e.originId);
    if (e.data !== undefined) fields.push(this.o.field, e.data);
    const added = (await (this.o.redis as unknown as DeadLetterClient).wafDeadLetter(
      this.o.streamKey,
      this.o.dlqKey,
      this.o.group,
      e.id,
      this.o.dlqMaxLen,
      ...fields,
    )) as number;
    this.held.delete(e.id);
    if (added === 1) {
      this.stats_.deadLettered++;
      this.o.logger.warn("record dead-lettered", { stream_id: e.id, reason, attempts });
    }
  }
}

interface ReapClient {
  wafReapConsumer(stream: string, group: string, consumer: string): Promise<unknown>;
}

interface DeadLetterClient {
  wafDeadLetter(...args: Array<string | number>): Promise<unknown>;
}
