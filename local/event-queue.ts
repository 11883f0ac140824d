/**
 * Durable queue for `Event` (asynchronous) invocations of the local Lambda runtime.
 *
 * AWS Lambda queues an `Event` invocation before it answers 202, retries a failing one twice, and
 * then hands it to an on-failure destination. The stream reader relies on that promise (reference §5:
 * an entry is acknowledged once its alert is durably queued), so the local runtime keeps it too:
 *
 * - one Redis Stream per function, `XADD` awaited before the 202;
 * - a consumer group read by one worker per function on its own duplicated connection (a blocking
 *   `XREADGROUP` stalls every other command on a shared ioredis connection);
 * - `XACK` + `XDEL` only once an invocation succeeded or failed for good, so whatever a crashed
 *   runtime was holding stays in the group's pending list and runs again at the next start;
 * - attempts are counted in Redis before each run, so a restart neither resets the retry budget
 *   nor lets a payload that crashes the runtime loop forever;
 * - a payload that failed every attempt is appended to a failed list with its error: nothing
 *   vanishes silently.
 *
 * Key layout (prefix `P`, function `F`):
 * - `P:queue:F`    stream, fields `payload` (raw JSON), `requestId`, `enqueuedAt` (ms), group `local-lambda`
 * - `P:attempts:F` hash, `<entryId>` = attempts started, `<entryId>:error` = last error text
 * - `P:failed:F`   list (oldest first) of JSON {@link FailedInvocation} records
 */
import type { ChainableCommander } from "ioredis";
import { fieldMap } from "../core/lib/fields.ts";
import { Limiter } from "../core/lib/limiter.ts";
import type { Logger } from "../core/lib/logger.ts";
import { isCluster, type RedisClient } from "../core/lib/redis.ts";
import { sleep } from "../core/lib/time.ts";
import type { StreamEntry } from "../core/stream/entry.ts";
import { RedisStream } from "../core/stream/redis-stream.ts";

/** The consumer group every local runtime reads the queues with. */
export const CONSUMER_GROUP = "local-lambda";

/**
 * Redis keys holding the queue of one function. On a cluster the three share a hash slot
 * (`{prefix:function}`): a transaction touches them together.
 */
export function queueKeys(
  prefix: string,
  functionName: string,
  cluster = false,
): { stream: string; attempts: string; failed: string } {
  if (cluster) {
    const tag = `{${prefix}:${functionName}}`;
    return { stream: `${tag}:queue`, attempts: `${tag}:attempts`, failed: `${tag}:failed` };
  }
  return {
    stream: `${prefix}:queue:${functionName}`,
    attempts: `${prefix}:attempts:${functionName}`,
    failed: `${prefix}:failed:${functionName}`,
  };
}

/** One queued invocation as a worker runs it. */
export interface QueuedEvent {
  /** Stream entry ID. */
  id: string;
  functionName: string;
  /** The request ID answered with the 202; kept for every attempt, as AWS does. */
  requestId: string;
  payload: unknown;
  /** Epoch milliseconds when the invocation was accepted. */
  enqueuedAt: number;
  /** 1-based; counts attempts made by runtimes that crashed meanwhile. */
  attempt: number;
}

/** What `P:failed:F` holds for an invocation that failed every attempt. */
export interface FailedInvocation {
  id: string;
  functionName: string;
  requestId: string;
  payload: unknown;
  attempts: number;
  errorType: string;
  error: string;
  enqueuedAt: number;
  failedAt: string;
}

export interface EventQueueOptions {
  /** Connected client for short commands; duplicated (never closed) for blocking reads. */
  redis: RedisClient;
  functionNames: readonly string[];
  keyPrefix: string;
  /** Runs one attempt; a rejection is a failed attempt. */
  run: (event: QueuedEvent) => Promise<void>;
  /** Called once an invocation has failed its last attempt, before it is recorded and removed. */
  onFinalFailure?: (event: QueuedEvent, error: unknown) => void | Promise<void>;
  /** Delay before each retry; attempts = length + 1. */
  retryDelaysMs: readonly number[];
  /** Invocations of one function running at once. */
  concurrency: number;
  /** Unique among runtimes sharing the queues at the same time; stable across restarts. */
  consumerName: string;
  /** How long one blocking read waits for new entries. */
  blockMs: number;
  /** Entries another consumer has not touched for this long are taken over. */
  claimIdleMs: number;
  /** How often the worker re-scans its own pending entries and stale ones of others. */
  recoverIntervalMs: number;
  logger: Logger;
}

export interface EventQueueStats {
  enqueued: number;
  /** Attempts started, retries and recovered runs included. */
  started: number;
  succeeded: number;
  /** Retries scheduled after a failed attempt. */
  retries: number;
  /** Invocations that failed their last attempt. */
  failed: number;
  /** Entries picked up from a pending list (left by a crash or a lost read reply). */
  recovered: number;
  /** Attempts running now. */
  inFlight: number;
  /** Entries queued or in progress, as of the last length Redis reported. */
  depth: number;
  depthByFunction: Record<string, number>;
}

/**
 * The durable `Event` queue of every function served by one local runtime.
 *
 * @example
 * const queue = new EventQueue({ redis, functionNames: ["alert"], keyPrefix: "waf:local-lambda", run, ... });
 * await queue.init();
 * await queue.enqueue("alert", '{"tx_id":"abc"}', randomUUID()); // durable once this resolves
 * queue.start();
 */
export class EventQueue {
  readonly #workers = new Map<string, FunctionWorker>();
  readonly #counters = {
    enqueued: 0,
    started: 0,
    succeeded: 0,
    retries: 0,
    failed: 0,
    recovered: 0,
  };
  #started = false;

  constructor(opts: EventQueueOptions) {
    if (opts.concurrency < 1) throw new RangeError("concurrency must be at least 1");
    for (const name of opts.functionNames) {
      this.#workers.set(name, new FunctionWorker(name, opts, this.#counters));
    }
  }

  /** Creates the consumer groups (at ID 0, so entries queued before the group existed count). */
  async init(): Promise<void> {
    await Promise.all([...this.#workers.values()].map((w) => w.init()));
  }

  /** Queues one invocation; once this resolves the payload survives a crash of this process. */
  async enqueue(functionName: string, payloadJson: string, requestId: string): Promise<string> {
    const worker = this.#workers.get(functionName);
    if (!worker) throw new Error(`no queue for function ${functionName}`);
    const id = await worker.enqueue(payloadJson, requestId);
    this.#counters.enqueued++;
    return id;
  }

  /** Starts one worker per function; each first re-runs what it left pending. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    for (const worker of this.#workers.values()) worker.start();
  }

  /**
   * Stops reading, waits up to `drainTimeoutMs` for running attempts, and closes the duplicated
   * connections. Whatever did not finish stays pending in Redis and runs at the next start.
   */
  async close(drainTimeoutMs: number): Promise<void> {
    await Promise.all([...this.#workers.values()].map((w) => w.close(drainTimeoutMs)));
  }

  stats(): EventQueueStats {
    const depthByFunction: Record<string, number> = {};
    let depth = 0;
    let inFlight = 0;
    for (const [name, worker] of this.#workers) {
      depthByFunction[name] = worker.depth;
      depth += worker.depth;
      inFlight += worker.running;
    }
    return { ...this.#counters, inFlight, depth, depthByFunction };
  }
}

type Counters = Omit<EventQueueStats, "inFlight" | "depth" | "depthByFunction">;

class FunctionWorker {
  depth = 0;
  running = 0;
  readonly #keys: ReturnType<typeof queueKeys>;
  readonly #limiter: Limiter;
  readonly #maxAttempts: number;
  /** Entries this process is running or waiting to retry: never dispatched twice. */
  readonly #owned = new Set<string>();
  readonly #attempts = new Set<Promise<void>>();
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  readonly #stop = new AbortController();
  readonly #stream: RedisStream;
  #reading: RedisStream | undefined;
  #conn: RedisClient | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;

  constructor(
    readonly name: string,
    private readonly opts: EventQueueOptions,
    private readonly counters: Counters,
  ) {
    this.#keys = queueKeys(opts.keyPrefix, name, isCluster(opts.redis));
    this.#stream = this.#port(opts.redis);
    this.#limiter = new Limiter(opts.concurrency);
    this.#maxAttempts = opts.retryDelaysMs.length + 1;
  }

  /** The queue's consumer group through the shared stream adapter; `blocking` for its BLOCK reads. */
  #port(blocking: RedisClient): RedisStream {
    return new RedisStream({
      redis: this.opts.redis,
      blocking,
      key: this.#keys.stream,
      group: CONSUMER_GROUP,
      consumer: this.opts.consumerName,
    });
  }

  async init(): Promise<void> {
    await this.#stream.ensureGroup();
    this.depth = await this.opts.redis.xlen(this.#keys.stream);
  }

  async enqueue(payloadJson: string, requestId: string): Promise<string> {
    const replies = await this.opts.redis
      .multi()
      .xadd(
        this.#keys.stream,
        "*",
        "payload",
        payloadJson,
        "requestId",
        requestId,
        "enqueuedAt",
        String(Date.now()),
      )
      .xlen(this.#keys.stream)
      .exec();
    const [id, length] = execResults(replies);
    this.#noteDepth(length);
    return String(id);
  }

  start(): void {
    const options = {
      connectionName: `local-lambda:${this.name}`,
      // A command timeout would abort every BLOCK read; ioredis' blocking-aware timeout instead
      // resolves a read whose reply never comes (e.g. re-sent after a reconnect) as empty.
      commandTimeout: undefined,
      socketTimeout: undefined,
      blockingTimeout: this.opts.blockMs,
      blockingTimeoutGrace: 5_000,
      maxRetriesPerRequest: 2,
      // The caller may map RESP3 replies to objects; the parsers below expect RESP2 shapes.
      replyMapping: "legacy" as const,
      lazyConnect: false,
    };
    const { redis } = this.opts;
    this.#conn = isCluster(redis)
      ? redis.duplicate(undefined, { redisOptions: { ...redis.options.redisOptions, ...options } })
      : redis.duplicate(options);
    this.#conn.on("error", (err: Error) => {
      if (!this.#stopping)
        this.opts.logger.warn(`local-lambda ${this.name}: redis: ${err.message}`);
    });
    this.#reading = this.#port(this.#conn);
    this.#loop = this.#run(this.#reading);
  }

  async close(drainTimeoutMs: number): Promise<void> {
    this.#stopping = true;
    this.#limiter.close();
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    this.#stop.abort();
    // Rejects the pending blocking read at once.
    this.#conn?.disconnect();
    const drained = Promise.allSettled([this.#loop, ...this.#attempts]).then(() => true);
    const waited = new AbortController();
    const finished = await Promise.race([
      drained,
      sleep(drainTimeoutMs, waited.signal).then(() => false),
    ]);
    waited.abort();
    if (!finished && this.running > 0) {
      this.opts.logger.warn(
        `local-lambda ${this.name}: ${this.running} async invocation(s) still running after ` +
          `${drainTimeoutMs} ms; they stay queued and run again at the next start`,
      );
    }
  }

  async #run(queue: RedisStream): Promise<void> {
    let lastRecovery = Number.NEGATIVE_INFINITY;
    let failures = 0;
    while (!this.#stopping) {
      try {
        if (Date.now() - lastRecovery >= this.opts.recoverIntervalMs) {
          await this.#recover(queue);
          lastRecovery = Date.now();
        }
        if (!(await this.#limiter.acquire())) break;
        let entries: StreamEntry[];
        try {
          entries = await queue.readNew(this.#limiter.free + 1, this.opts.blockMs);
        } catch (err) {
          this.#limiter.release();
          throw err;
        }
        if (entries.length === 0) this.#limiter.release();
        entries.forEach((entry, i) => {
          this.#dispatch(entry, i === 0 || this.#limiter.tryAcquire(), false);
        });
        failures = 0;
      } catch (err) {
        if (this.#stopping) break;
        failures++;
        if (/NOGROUP/.test(errorText(err))) {
          // The stream was deleted under us (e.g. FLUSHDB): recreate it and its group.
          await this.#stream.ensureGroup().catch(() => undefined);
        }
        this.opts.logger.warn(
          `local-lambda ${this.name}: reading the queue failed: ${errorText(err)}`,
        );
        await this.#sleep(Math.min(100 * 2 ** failures, 5_000));
      }
    }
  }

  /**
   * Takes back what this consumer left pending (a crash, or a read whose reply was lost) and
   * what other consumers have left idle for `claimIdleMs`.
   */
  async #recover(queue: RedisStream): Promise<void> {
    let cursor = "0";
    for (;;) {
      const entries = await queue.readOwnPending(cursor, 100);
      const last = entries.at(-1);
      if (!last) break;
      for (const entry of entries) this.#dispatch(entry, false, true);
      cursor = last.id;
    }
    if (Number.isFinite(this.opts.claimIdleMs)) {
      let start = "0-0";
      do {
        const page = await queue.autoclaim(this.opts.claimIdleMs, start, 100);
        for (const entry of page.entries) this.#dispatch(entry, false, true);
        start = page.cursor;
      } while (start !== "0-0" && !this.#stopping);
    }
    this.#noteDepth(await this.opts.redis.xlen(this.#keys.stream));
  }

  #dispatch(entry: StreamEntry, haveSlot: boolean, recovered: boolean): void {
    if (this.#owned.has(entry.id)) {
      if (haveSlot) this.#limiter.release();
      return;
    }
    this.#owned.add(entry.id);
    if (recovered && entry.fields) this.counters.recovered++;
    this.#track(this.#attempt(entry, haveSlot));
  }

  #track(attempt: Promise<void>): void {
    this.#attempts.add(attempt);
    void attempt.finally(() => this.#attempts.delete(attempt));
  }

  /** Never rejects: a failure to reach Redis leaves the entry pending for a later recovery. */
  async #attempt(entry: StreamEntry, haveSlot: boolean): Promise<void> {
    if (!haveSlot && !(await this.#limiter.acquire())) {
      this.#owned.delete(entry.id);
      return;
    }
    this.running++;
    try {
      await this.#runOnce(entry);
    } catch (err) {
      this.#owned.delete(entry.id);
      this.opts.logger.error(
        `local-lambda ${this.name}: async invocation ${entry.id} left pending: ${errorText(err)}`,
      );
    } finally {
      this.running--;
      this.#limiter.release();
    }
  }

  async #runOnce(entry: StreamEntry): Promise<void> {
    const { redis } = this.opts;
    if (entry.fields === null) {
      // Deleted while pending: a previous run finished it between XDEL and XACK, or an operator
      // removed it. Nothing to run.
      await this.#finish(entry.id, (tx) => tx);
      return;
    }
    const decoded = decodeEntry(this.name, entry.id, entry.fields);
    const attempt = await redis.hincrby(this.#keys.attempts, entry.id, 1);
    if (!decoded.ok) {
      const event = { ...decoded.event, attempt };
      await this.#fail(event, new Error(decoded.reason), attempt);
      return;
    }
    const event: QueuedEvent = { ...decoded.event, attempt };
    if (attempt > this.#maxAttempts) {
      // The runtime died during the last attempt (or before recording its outcome).
      const lastError = await redis.hget(this.#keys.attempts, `${entry.id}:error`);
      const error = new Error(
        lastError ?? `the runtime stopped during attempt ${attempt - 1} of ${this.#maxAttempts}`,
      );
      await this.#fail(event, error, attempt - 1);
      return;
    }
    this.counters.started++;
    try {
      await this.opts.run(event);
    } catch (err) {
      if (attempt >= this.#maxAttempts) {
        await this.#fail(event, err, attempt);
        return;
      }
      await redis.hset(this.#keys.attempts, `${entry.id}:error`, errorText(err));
      this.counters.retries++;
      const wait = this.opts.retryDelaysMs[attempt - 1] ?? 0;
      this.opts.logger.warn(
        `local-lambda ${this.name}: async invocation ${event.requestId} failed attempt ${attempt}` +
          ` of ${this.#maxAttempts}, retrying in ${wait} ms: ${errorText(err)}`,
      );
      this.#scheduleRetry(entry, wait);
      return;
    }
    await this.#finish(entry.id, (tx) => tx);
    this.counters.succeeded++;
  }

  #scheduleRetry(entry: StreamEntry, wait: number): void {
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer);
      if (!this.#stopping) this.#track(this.#attempt(entry, false));
    }, wait);
    this.#retryTimers.add(timer);
  }

  async #fail(event: QueuedEvent, error: unknown, attempts: number): Promise<void> {
    this.opts.logger.error(
      `local-lambda ${this.name}: async invocation ${event.requestId} failed after ${attempts} ` +
        `attempt(s): ${errorText(error)}`,
    );
    try {
      // Before the record is removed: a crash here calls it again rather than never.
      await this.opts.onFinalFailure?.(event, error);
    } catch (err) {
      this.opts.logger.error(`local-lambda ${this.name}: onAsyncFailure threw: ${errorText(err)}`);
    }
    const record: FailedInvocation = {
      id: event.id,
      functionName: this.name,
      requestId: event.requestId,
      payload: event.payload,
      attempts,
      errorType: error instanceof Error ? error.name : typeof error,
      error: errorText(error),
      enqueuedAt: event.enqueuedAt,
      failedAt: new Date().toISOString(),
    };
    await this.#finish(event.id, (tx) => tx.rpush(this.#keys.failed, JSON.stringify(record)));
    this.counters.failed++;
  }

  /** Acknowledges and removes an entry (plus `extra` in the same transaction), retrying briefly. */
  async #finish(id: string, extra: (tx: ChainableCommander) => ChainableCommander): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const tx = extra(this.opts.redis.multi())
          .xack(this.#keys.stream, CONSUMER_GROUP, id)
          .xdel(this.#keys.stream, id)
          .hdel(this.#keys.attempts, id, `${id}:error`)
          .xlen(this.#keys.stream);
        const results = execResults(await tx.exec());
        this.#noteDepth(results.at(-1));
        this.#owned.delete(id);
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        await sleep(100 * 2 ** attempt);
      }
    }
  }

  #noteDepth(length: unknown): void {
    if (typeof length === "number") this.depth = length;
  }

  #sleep(ms: number): Promise<boolean> {
    return sleep(ms, this.#stop.signal);
  }
}

type Decoded =
  | { ok: true; event: Omit<QueuedEvent, "attempt"> }
  | { ok: false; event: Omit<QueuedEvent, "attempt">; reason: string };

function decodeEntry(functionName: string, id: string, fields: string[]): Decoded {
  const f = fieldMap<string>(fields);
  const raw = f.payload;
  const base = {
    id,
    functionName,
    requestId: f.requestId ?? id,
    enqueuedAt: Number(f.enqueuedAt ?? Number.NaN),
  };
  if (raw === undefined)
    return { ok: false, event: { ...base, payload: null }, reason: "queue entry has no payload" };
  try {
    return { ok: true, event: { ...base, payload: JSON.parse(raw) } };
  } catch (err) {
    return {
      ok: false,
      event: { ...base, payload: raw },
      reason: `queued payload is not JSON: ${errorText(err)}`,
    };
  }
}

/** Results of a MULTI/EXEC, throwing the first command error. */
function execResults(replies: [Error | null, unknown][] | null): unknown[] {
  if (!replies) throw new Error("Redis transaction aborted");
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

export function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
