/**
 * The log shipper: follows ModSecurity v3 / Coraza JSON audit logs (Serial files, globs,
 * Concurrent-log directories) and adds every record, verbatim, to the Redis Stream, at least
 * once. One loop reads files and cuts batches; up to `maxInFlight` batches are pipelined to
 * Redis at once; offsets move only along the acknowledged frontier, and the checkpoint on disk
 * only ever holds acknowledged offsets.
 *
 * Bounds: bytes read but not yet acknowledged never exceed `maxUnackedBytes` (plus one read
 * chunk and one unfinished line of at most MAX_RECORD_BYTES per file), so a backlog of
 * gigabytes is read at the pace Redis takes it, with constant memory.
 *
 * Decisions about files (where to start, rotation, when to let go) are in plan.ts; file-system
 * access in files.ts; the XADD in producer.ts.
 */
import type { FileHandle } from "node:fs/promises";
import { type BackoffPolicy, backoffMs } from "../lib/backoff.ts";
import { Limiter } from "../lib/limiter.ts";
import type { Logger } from "../lib/logger.ts";
import { redisErrorCode } from "../lib/redis.ts";
import { type Clock, systemClock } from "../lib/time.ts";
import { AckFrontier, type Batch, BatchBuilder } from "./batch.ts";
import {
  type FileCheckpoint,
  fingerprint,
  HEAD_BYTES,
  parseState,
  StateError,
  serializeState,
} from "./checkpoint.ts";
import {
  type Listed,
  openChecked,
  readAt,
  readHead,
  readStateFile,
  type ShipPath,
  scanPaths,
  tempFileOf,
  writeFileAtomic,
} from "./files.ts";
import { type LineSink, LineSplitter } from "./lines.ts";
import {
  type Candidate,
  checkTail,
  type Deferral,
  decideStart,
  goneFor,
  idleAction,
} from "./plan.ts";
import type { StreamProducer } from "./producer.ts";

export interface ShipperOptions {
  paths: readonly ShipPath[];
  /** The checkpoint file (`--state`). */
  stateFile: string;
  producer: StreamProducer;
  logger: Logger;
  /** `MAX_RECORD_BYTES`: longer lines are skipped with a warning (see README: ship or skip). */
  maxRecordBytes: number;
  clock?: Clock;
  /** Records per XADD pipeline (default 500). */
  batchRecords?: number;
  /** Record bytes per pipeline (default 4 MiB). */
  batchBytes?: number;
  /** Longest a partial batch waits for more records (default 50 ms). */
  batchWindowMs?: number;
  /** Pipelines in flight at once (default 4). */
  maxInFlight?: number;
  /** Bytes read but not acknowledged, at most (default 16 MiB). */
  maxUnackedBytes?: number;
  /** Bytes per read (default 512 KiB). */
  readChunkBytes?: number;
  /** How often files are listed again (default 250 ms). */
  scanIntervalMs?: number;
  /** Files open at once, at most, when a Concurrent-log directory has a backlog (256). */
  maxOpenFiles?: number;
  /** How long a Concurrent file or a possible copy must stay unchanged to be decided (2 s). */
  settleMs?: number;
  /** A quiet file's descriptor is closed after this long (default 30 s); reopened when it grows. */
  closeInactiveMs?: number;
  /** Checkpoint writes, at most one per this interval (default 1 s), and one at stop. */
  checkpointIntervalMs?: number;
  /** A progress log line (shipped, lag_bytes, errors) this often (default 30 s; 0 = never). */
  statsIntervalMs?: number;
  /** Redis retry backoff (default 250 ms doubling to 30 s, with jitter). */
  retry?: BackoffPolicy;
  random?: () => number;
}

/** What `/healthz` and the progress log report. */
export interface ShipperStats {
  /** Records acknowledged by Redis since start. */
  shipped: number;
  /** Bytes in followed files not yet acknowledged (includes unfinished last lines). */
  lag_bytes: number;
  /** Failed Redis attempts and unreadable files since start. */
  errors: number;
  /** Lines over MAX_RECORD_BYTES skipped since start. */
  skipped_oversize: number;
  /** Files followed (Concurrent files shipped completely not counted). */
  files: number;
  /** False from a failed XADD until the next one succeeds. */
  redis_ok: boolean;
  last_error?: string;
}

/** A file being followed. */
interface Followed {
  key: string;
  path: string;
  concurrent: boolean;
  handle?: FileHandle;
  /** Bumped when the file is truncated or replaced: acks for older generations are ignored. */
  gen: number;
  /** Next byte to read. */
  readPos: number;
  /** Every record before this offset is acknowledged. */
  acked: number;
  /** Last size seen by a scan or a read. */
  size: number;
  /** First bytes of this generation (≤ HEAD_BYTES), for fingerprints and copy recognition. */
  head: Buffer;
  /** `head` is being filled by sequential reads from offset 0. */
  headFromReads: boolean;
  splitter: LineSplitter;
  sink: LineSink;
  listed: boolean;
  atEof: boolean;
  lastChangeAt: number;
  /** When a scan last listed it. */
  lastSeenAt: number;
  /** Concurrent file shipped completely (no descriptor, kept so it is not shipped again). */
  done: boolean;
}

/** A generation reset by a truncation: its copy may still turn up (copytruncate). */
interface Ghost extends Candidate {
  expiresAt: number;
}

const GHOST_TTL_MS = 60_000;

/** Transaction id of a (skipped) record, from its first bytes, for the warning only. */
function txIdOf(head: Buffer): string | undefined {
  const m = /"(?:unique_id|id)"\s*:\s*"([^"\\]{1,128})"/.exec(head.toString("latin1"));
  return m?.[1]?.replace(/[^\x20-\x7e]/g, "?");
}

export class Shipper {
  readonly #o: Required<
    Omit<ShipperOptions, "clock" | "random" | "retry" | "paths" | "producer" | "logger">
  >;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #retry: BackoffPolicy;
  readonly #log: Logger;
  readonly #builder: BatchBuilder<Followed>;
  readonly #frontier = new AckFrontier<Followed>();
  readonly #limiter: Limiter;
  readonly #exclude: Set<string>;

  /** Followed files by key. */
  readonly #followed = new Map<string, Followed>();
  /** Concurrent files shipped completely, by path (so scans need not stat them). */
  readonly #doneByPath = new Map<string, Followed>();
  /** Followed files with an open descriptor. */
  readonly #active = new Set<Followed>();
  /** Checkpoint entries from disk not matched yet (only until the first scan is over). */
  #checkpoints = new Map<string, FileCheckpoint>();
  /**
   * Every checkpoint entry from disk, until the first scan is over: copy candidates even once
   * their own file was matched (a live file found replaced must still let its copy resume).
   */
  #fromDisk: FileCheckpoint[] = [];
  readonly #deferred = new Map<string, Deferral>();
  #ghosts: Ghost[] = [];
  /** Keys (or paths) already warned about, so a broken file warns once. */
  readonly #warned = new Set<string>();
  /** Batches cut from a read, waiting for a pipeline slot. */
  #ready: Batch<Followed>[] = [];

  #stats: ShipperStats = {
    shipped: 0,
    lag_bytes: 0,
    errors: 0,
    skipped_oversize: 0,
    files: 0,
    redis_ok: true,
  };
  #failingSince: number | undefined;
  #stopping = false;
  /** Aborts Redis retries (a stop whose drain ran out of time). */
  readonly #abort = new AbortController();
  #wake = new AbortController();
  #running: Promise<void> | undefined;
  #dirty = false;
  /** A file started, reset or dropped: written at once, not at the next interval. */
  #urgent = false;
  #persisting: Promise<void> | undefined;
  #lastPersistAt = 0;
  #lastStatsAt = 0;
  #nextScanAt = 0;

  constructor(private readonly opts: ShipperOptions) {
    this.#o = {
      stateFile: opts.stateFile,
      maxRecordBytes: opts.maxRecordBytes,
      batchRecords: opts.batchRecords ?? 500,
      batchBytes: opts.batchBytes ?? 4 * 1024 * 1024,
      batchWindowMs: opts.batchWindowMs ?? 50,
      maxInFlight: opts.maxInFlight ?? 4,
      // Never below what one unfinished record and one read can hold, or reading could stall.
      maxUnackedBytes: Math.max(
        opts.maxUnackedBytes ?? 16 * 1024 * 1024,
        opts.maxRecordBytes + 1 + (opts.readChunkBytes ?? 512 * 1024),
      ),
      readChunkBytes: opts.readChunkBytes ?? 512 * 1024,
      scanIntervalMs: opts.scanIntervalMs ?? 250,
      maxOpenFiles: opts.maxOpenFiles ?? 256,
      settleMs: opts.settleMs ?? 2_000,
      closeInactiveMs: opts.closeInactiveMs ?? 30_000,
      checkpointIntervalMs: opts.checkpointIntervalMs ?? 1_000,
      statsIntervalMs: opts.statsIntervalMs ?? 30_000,
    };
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    this.#retry = opts.retry ?? { baseMs: 250, maxMs: 30_000 };
    this.#log = opts.logger;
    this.#builder = new BatchBuilder({
      maxRecords: this.#o.batchRecords,
      maxBytes: this.#o.batchBytes,
    });
    this.#limiter = new Limiter(this.#o.maxInFlight);
    this.#exclude = new Set([opts.stateFile, `${opts.stateFile}.lock`, tempFileOf(opts.stateFile)]);
  }

  /** Counters and lag, as of now. */
  stats(): ShipperStats {
    let lag = 0;
    let files = 0;
    for (const f of this.#followed.values()) {
      if (f.done) continue;
      files++;
      lag += Math.max(f.size, f.readPos) - f.acked;
    }
    return { ...this.#stats, lag_bytes: lag, files };
  }

  /** Reads the checkpoint and starts following; resolves once running. */
  async start(): Promise<void> {
    await this.#loadCheckpoint();
    await this.#scan();
    this.#running = this.#loop();
    // An unexpected failure of the loop must surface (the CLI exits non-zero, systemd restarts).
    this.#running.catch(() => undefined);
  }

  /** Resolves when the loop ends (after stop), rejects if it failed. */
  done(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  /**
   * Stops reading, sends what was read, waits up to `drainMs` for Redis to acknowledge it,
   * writes the checkpoint and closes every file. What Redis did not acknowledge in time is
   * read again at the next start.
   */
  async stop(drainMs = 10_000): Promise<void> {
    if (!this.#stopping) {
      this.#stopping = true;
      this.#wake.abort();
    }
    const timer = setTimeout(() => {
      this.#abort.abort();
      this.#limiter.close();
    }, drainMs);
    try {
      await this.#running?.catch(() => undefined);
    } finally {
      clearTimeout(timer);
    }
    await this.#persist(true);
    for (const f of this.#active) await f.handle?.close().catch(() => undefined);
    this.#active.clear();
  }

  // ---------------------------------------------------------------- the loop --

  async #loop(): Promise<void> {
    while (!this.#stopping) {
      const now = this.#clock.now();
      if (now >= this.#nextScanAt) {
        await this.#scan();
        this.#nextScanAt = this.#clock.now() + this.#o.scanIntervalMs;
      }
      const read = await this.#readRound();
      if (this.#builder.due(this.#clock.now(), read ? this.#o.batchWindowMs : 0)) this.#cut();
      await this.#sendReady();
      this.#maybePersist();
      this.#maybeLogStats();
      if (read && this.#unacked() < this.#o.maxUnackedBytes) continue;
      const untilScan = Math.max(1, this.#nextScanAt - this.#clock.now());
      const opened = this.#builder.openedAt;
      const untilBatch =
        opened === undefined
          ? untilScan
          : Math.max(1, opened + this.#o.batchWindowMs - this.#clock.now());
      await this.#clock.sleep(Math.min(untilScan, untilBatch), this.#wake.signal);
      if (this.#wake.signal.aborted && !this.#stopping) this.#wake = new AbortController();
    }
    // Drain: what was read goes out; the stop() timer bounds the wait.
    this.#cut();
    await this.#sendReady();
    await this.#limiter.idle();
  }

  /** Wakes the loop early (an acknowledgement freed budget, or stop). */
  #nudge(): void {
    this.#wake.abort();
  }

  /**
   * Bytes read and held until Redis acknowledges them: records in flight and unfinished lines
   * (an oversized line being skipped is not held, so it cannot stall reading).
   */
  #unacked(): number {
    let n = 0;
    for (const f of this.#active) n += f.splitter.lineStart - f.acked + f.splitter.held;
    return n;
  }

  /** One chunk from each file that has more, while the unacknowledged budget lasts. */
  async #readRound(): Promise<boolean> {
    let any = false;
    for (const f of [...this.#active]) {
      if (this.#stopping) break;
      if (f.atEof || !f.handle) continue;
      if (this.#unacked() >= this.#o.maxUnackedBytes) break;
      let chunk: Buffer;
      try {
        chunk = await readAt(f.handle, f.readPos, this.#o.readChunkBytes);
      } catch (err) {
        this.#fileError(f, err as Error);
        continue;
      }
      if (chunk.length === 0) {
        f.atEof = true;
        continue;
      }
      any = true;
      const now = this.#clock.now();
      f.lastChangeAt = now;
      if (f.headFromReads && f.readPos < HEAD_BYTES && f.head.length === f.readPos)
        f.head = Buffer.concat([f.head, chunk.subarray(0, HEAD_BYTES - f.readPos)]);
      f.readPos += chunk.length;
      f.size = Math.max(f.size, f.readPos);
      if (chunk.length < this.#o.readChunkBytes) f.atEof = true;
      f.splitter.feed(chunk, f.sink);
    }
    return any;
  }

  #fileError(f: Followed, err: Error): void {
    this.#stats.errors++;
    if (!this.#warned.has(f.key)) {
      this.#warned.add(f.key);
      this.#log.warn("cannot read audit log file", { path: f.path, error: err.message });
    }
    void f.handle?.close().catch(() => undefined);
    f.handle = undefined;
    this.#active.delete(f);
  }

  #sinkFor(f: Followed): LineSink {
    return {
      record: (line, end) => {
        this.#builder.addRecord(f, f.gen, line, end, this.#clock.now());
        if (this.#builder.full) this.#cut();
      },
      blank: (end) => this.#builder.mark(f, f.gen, end, this.#clock.now()),
      oversize: (start, end, bytes, head) => {
        this.#stats.skipped_oversize++;
        this.#log.warn("audit record longer than MAX_RECORD_BYTES skipped", {
          path: f.path,
          offset: start,
          bytes,
          max_record_bytes: this.#o.maxRecordBytes,
          tx_id: txIdOf(head),
        });
        this.#builder.mark(f, f.gen, end, this.#clock.now());
      },
    };
  }

  #cut(): void {
    const batch = this.#builder.take();
    if (batch) this.#ready.push(batch);
  }

  /** Hands cut batches to Redis, waiting for a pipeline slot (that wait is the backpressure). */
  async #sendReady(): Promise<void> {
    while (this.#ready.length > 0) {
      const batch = this.#ready.shift() as Batch<Followed>;
      this.#frontier.push(batch);
      if (batch.records.length === 0) {
        this.#settle(batch);
        continue;
      }
      if (!(await this.#limiter.acquire())) return; // closed: stop ran out of time
      void this.#deliver(batch).finally(() => this.#limiter.release());
    }
  }

  async #deliver(batch: Batch<Followed>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.opts.producer.add(batch.records);
        break;
      } catch (err) {
        this.#stats.errors++;
        this.#stats.redis_ok = false;
        this.#stats.last_error = redisErrorCode(err);
        if (this.#failingSince === undefined) {
          this.#failingSince = this.#clock.now();
          this.#log.warn("Redis write failed; retrying with backoff, nothing is lost", {
            error: redisErrorCode(err),
          });
        }
        if (this.#abort.signal.aborted) return;
        const delay = backoffMs(attempt, this.#retry, this.#random());
        if (!(await this.#clock.sleep(delay, this.#abort.signal))) return;
      }
    }
    if (this.#failingSince !== undefined) {
      this.#log.info("Redis is back", {
        outage_ms: this.#clock.now() - this.#failingSince,
      });
      this.#failingSince = undefined;
    }
    this.#stats.redis_ok = true;
    this.#settle(batch);
  }

  #settle(batch: Batch<Followed>): void {
    for (const b of this.#frontier.settle(batch)) {
      this.#stats.shipped += b.records.length;
      for (const m of b.marks) {
        if (m.file.gen === m.gen && m.end > m.file.acked) {
          m.file.acked = m.end;
          this.#dirty = true;
        }
      }
    }
    this.#nudge();
  }

  // ---------------------------------------------------------------- scanning --

  async #scan(): Promise<void> {
    let listed: Listed[];
    try {
      listed = await scanPaths(this.opts.paths, {
        exclude: this.#exclude,
        knownDone: (path) => this.#doneByPath.get(path)?.key,
        warn: (message, extra) => {
          const k = `${message}:${JSON.stringify(extra)}`;
          if (this.#warned.has(k)) return;
          this.#warned.add(k);
          this.#log.warn(message, extra);
        },
      });
    } catch (err) {
      this.#stats.errors++;
      this.#log.error("listing the audit logs failed", { error: (err as Error).message });
      return;
    }
    const now = this.#clock.now();
    const seen = new Set<string>();
    for (const l of listed) {
      seen.add(l.key);
      const f = this.#followed.get(l.key);
      if (f) await this.#refresh(f, l, now);
      // A Concurrent-log backlog of many files is opened a bounded number at a time (oldest
      // first: the listing is sorted); the rest wait for a later scan.
      else if (!l.concurrent || this.#active.size < this.#o.maxOpenFiles)
        await this.#discover(l, now);
    }
    for (const f of this.#followed.values()) {
      if (seen.has(f.key)) continue;
      f.listed = false;
      // Renamed out of the patterns or deleted: read to its end through the open descriptor.
      if (f.handle) {
        try {
          const size = Number((await f.handle.stat()).size);
          if (size > f.readPos) f.atEof = false;
          if (size < f.readPos) this.#reset(f, "truncated", now);
        } catch {
          // keep what we have
        }
      }
    }
    for (const key of this.#deferred.keys()) if (!seen.has(key)) this.#deferred.delete(key);
    this.#ghosts = this.#ghosts.filter((g) => g.expiresAt > now);
    if (this.#checkpoints.size > 0 || this.#fromDisk.length > 0) {
      this.#checkpoints.clear();
      this.#fromDisk = [];
      this.#dirty = true;
    }
    for (const f of [...this.#followed.values()]) this.#idle(f, now);
  }

  async #refresh(f: Followed, l: Listed, now: number): Promise<void> {
    f.listed = true;
    f.lastSeenAt = now;
    if (f.path !== l.path) {
      if (!f.concurrent)
        this.#log.info("audit log renamed; following it under its new name", {
          from: f.path,
          to: l.path,
        });
      if (f.done) {
        this.#doneByPath.delete(f.path);
        this.#doneByPath.set(l.path, f);
      }
      f.path = l.path;
      this.#dirty = true;
    }
    if (f.done || l.size < 0) return;
    if (l.size !== f.size) f.lastChangeAt = now;
    let check = checkTail(f.readPos, l.size, f.head, undefined);
    if (check === "ok" && l.size !== f.size && !f.concurrent && f.head.length > 0) {
      const headNow = f.handle
        ? await readAt(f.handle, 0, f.head.length).catch(() => undefined)
        : await readHead(l.path, l.key);
      if (Buffer.isBuffer(headNow)) check = checkTail(f.readPos, l.size, f.head, headNow);
    }
    f.size = l.size;
    if (check !== "ok") this.#reset(f, check, now);
    if (f.size > f.readPos || check !== "ok") {
      f.atEof = false;
      if (!f.handle) await this.#open(f);
    }
  }

  /** Starts a generation over at offset 0 (truncated, or its content replaced). */
  #reset(f: Followed, why: "truncated" | "replaced", now: number): void {
    this.#log.info(
      why === "truncated"
        ? "audit log truncated (copytruncate?); reading it again from the start"
        : "audit log content replaced; reading it again from the start",
      { path: f.path, read_offset: f.readPos, acked_offset: f.acked },
    );
    if (f.acked > 0 && f.head.length > 0) {
      const fp = fingerprint(f.head, f.acked);
      this.#ghosts.push({
        key: `${f.key}#${f.gen}`,
        path: f.path,
        offset: f.acked,
        head: f.head,
        ...fp,
        expiresAt: now + GHOST_TTL_MS,
      });
    }
    f.gen++;
    f.readPos = 0;
    f.acked = 0;
    f.head = Buffer.alloc(0);
    f.headFromReads = true;
    f.splitter = new LineSplitter(this.#o.maxRecordBytes, 0);
    f.atEof = false;
    f.lastChangeAt = now;
    this.#dirty = true;
    this.#urgent = true;
  }

  #candidates(): Candidate[] {
    const out: Candidate[] = [];
    for (const f of this.#followed.values()) {
      if (f.concurrent || f.acked <= 0 || f.head.length === 0) continue;
      out.push({
        key: f.key,
        path: f.path,
        offset: f.acked,
        head: f.head,
        ...fingerprint(f.head, f.acked),
      });
    }
    for (const c of this.#fromDisk) if (!c.done && c.offset > 0) out.push(c);
    out.push(...this.#ghosts);
    return out;
  }

  async #discover(l: Listed, now: number): Promise<void> {
    const head = await readHead(l.path, l.key);
    if (head === undefined) return; // gone or rotated since the listing: next scan
    if (head instanceof Error) {
      this.#warnOnce(l.key, "cannot read audit log file", { path: l.path, error: head.message });
      return;
    }
    const checkpoint = this.#checkpoints.get(l.key);
    const decision = decideStart(
      { key: l.key, path: l.path, size: l.size, head, concurrent: l.concurrent },
      {
        checkpoint,
        candidates: this.#candidates(),
        deferral: this.#deferred.get(l.key),
        now,
        settleMs: this.#o.settleMs,
      },
    );
    if (decision.action === "defer") {
      const d = this.#deferred.get(l.key);
      if (!d || d.size !== l.size) this.#deferred.set(l.key, { size: l.size, since: now });
      return;
    }
    this.#deferred.delete(l.key);
    this.#checkpoints.delete(l.key);
    const offset = decision.offset;
    const f: Followed = {
      key: l.key,
      path: l.path,
      concurrent: l.concurrent,
      gen: 0,
      readPos: offset,
      acked: offset,
      size: l.size,
      head: offset === 0 ? Buffer.alloc(0) : head,
      headFromReads: offset === 0,
      splitter: new LineSplitter(this.#o.maxRecordBytes, offset),
      sink: undefined as unknown as LineSink,
      listed: true,
      atEof: false,
      lastChangeAt: now,
      lastSeenAt: now,
      done: false,
    };
    f.sink = this.#sinkFor(f);
    this.#followed.set(f.key, f);
    if (l.concurrent && checkpoint?.done && decision.reason === "checkpoint") {
      f.done = true;
      this.#doneByPath.set(f.path, f);
      return;
    }
    const extra = {
      path: l.path,
      offset,
      reason: decision.reason,
      ...(decision.copyOf ? { copy_of: decision.copyOf } : {}),
    };
    if (l.concurrent) this.#log.debug("following audit log file", extra);
    else this.#log.info("following audit log file", extra);
    if (offset > 0 || decision.reason !== "new") {
      this.#dirty = true;
      this.#urgent = true;
    }
    await this.#open(f);
  }

  async #open(f: Followed): Promise<void> {
    const opened = await openChecked(f.path, f.key);
    if (opened === undefined) return;
    if (opened instanceof Error) {
      this.#warnOnce(f.key, "cannot read audit log file", { path: f.path, error: opened.message });
      return;
    }
    f.handle = opened.handle;
    f.size = opened.size;
    f.atEof = f.readPos >= opened.size;
    f.lastChangeAt = this.#clock.now();
    this.#active.add(f);
  }

  /** One warning and one error counted per file, however many scans find it unreadable. */
  #warnOnce(key: string, message: string, extra: Record<string, unknown>): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#stats.errors++;
    this.#log.warn(message, extra);
  }

  #idle(f: Followed, now: number): void {
    if (f.done || !f.handle) {
      if (!f.listed && goneFor(f.lastSeenAt, now, this.#o.closeInactiveMs)) this.#forget(f);
      return;
    }
    const action = idleAction(
      {
        concurrent: f.concurrent,
        listed: f.listed,
        atEof: f.atEof,
        partial: f.splitter.pending,
        unacked: f.readPos - f.acked,
        lastChangeAt: f.lastChangeAt,
        readPos: f.readPos,
        lastSeenAt: f.lastSeenAt,
      },
      now,
      { settleMs: this.#o.settleMs, closeInactiveMs: this.#o.closeInactiveMs },
    );
    switch (action) {
      case "keep":
        return;
      case "flush":
        f.splitter.flushPartial(f.sink);
        return;
      case "done":
        this.#close(f);
        f.done = true;
        this.#doneByPath.set(f.path, f);
        this.#dirty = true;
        return;
      case "close":
        this.#close(f);
        return;
      case "forget":
        this.#forget(f);
        return;
    }
  }

  #close(f: Followed): void {
    void f.handle?.close().catch(() => undefined);
    f.handle = undefined;
    this.#active.delete(f);
  }

  #forget(f: Followed): void {
    this.#close(f);
    this.#followed.delete(f.key);
    if (this.#doneByPath.get(f.path) === f) this.#doneByPath.delete(f.path);
    this.#dirty = true;
    this.#urgent = true;
  }

  // ------------------------------------------------------------- checkpoint --

  async #loadCheckpoint(): Promise<void> {
    const text = await readStateFile(this.#o.stateFile);
    if (text === undefined) {
      this.#log.info("no checkpoint yet: shipping every file from its start", {
        state: this.#o.stateFile,
      });
      return;
    }
    try {
      this.#fromDisk = parseState(text);
      for (const cp of this.#fromDisk) this.#checkpoints.set(cp.key, cp);
    } catch (err) {
      if (!(err instanceof StateError)) throw err;
      const aside = `${this.#o.stateFile}.corrupt-${this.#clock.now()}`;
      await writeFileAtomic(aside, text);
      this.#log.warn("checkpoint unreadable: set aside, shipping every file from its start", {
        state: this.#o.stateFile,
        set_aside: aside,
        error: err.message,
      });
    }
  }

  #entries(): FileCheckpoint[] {
    const out: FileCheckpoint[] = [];
    for (const f of this.#followed.values()) {
      if (f.acked <= 0) continue;
      out.push({
        key: f.key,
        path: f.path,
        offset: f.acked,
        ...fingerprint(f.head, f.acked),
        ...(f.done ? { done: true } : {}),
      });
    }
    // Before the first scan is over, entries not matched yet are kept as they were.
    out.push(...this.#checkpoints.values());
    return out;
  }

  #maybePersist(): void {
    if (!this.#dirty || this.#persisting) return;
    if (!this.#urgent && this.#clock.now() - this.#lastPersistAt < this.#o.checkpointIntervalMs)
      return;
    void this.#persist(false);
  }

  async #persist(final: boolean): Promise<void> {
    if (this.#persisting) await this.#persisting;
    if (!this.#dirty && !final) return;
    this.#dirty = false;
    this.#urgent = false;
    this.#lastPersistAt = this.#clock.now();
    const text = serializeState(this.#entries(), this.#lastPersistAt);
    this.#persisting = writeFileAtomic(this.#o.stateFile, text)
      .catch((err: Error) => {
        this.#dirty = true;
        this.#stats.errors++;
        this.#log.error("writing the checkpoint failed", {
          state: this.#o.stateFile,
          error: err.message,
        });
      })
      .finally(() => {
        this.#persisting = undefined;
      });
    await this.#persisting;
  }

  #maybeLogStats(): void {
    const every = this.#o.statsIntervalMs;
    if (every <= 0) return;
    const now = this.#clock.now();
    if (this.#lastStatsAt === 0) this.#lastStatsAt = now;
    if (now - this.#lastStatsAt < every) return;
    this.#lastStatsAt = now;
    const s = this.stats();
    this.#log.info("shipper progress", { ...s });
  }
}
