/**
 * Batches of records for pipelined XADDs, and the in-order acknowledgement that moves file
 * offsets. Pure: no I/O, no clock (times are passed in).
 *
 * Several batches may be in flight at once (pipelined); they can finish out of order (a retry
 * after a failure). A file's checkpoint may only move past records that were all acknowledged,
 * so offsets advance batch by batch in the order the batches were cut: the acknowledged
 * frontier.
 */

/** "Everything of `file`'s generation `gen` before byte `end` is in this batch or earlier." */
export interface Mark<F> {
  file: F;
  gen: number;
  end: number;
}

export interface Batch<F> {
  /** Cut order. */
  readonly seq: number;
  /** What XADD sends, in file order. */
  readonly records: Buffer[];
  /** Sum of the records' lengths. */
  readonly bytes: number;
  /** Per file and generation, how far this batch reaches (blank and skipped lines included). */
  readonly marks: Mark<F>[];
}

export interface BatchLimits {
  /** Records per batch (one pipelined round trip). */
  maxRecords: number;
  /** Record bytes per batch. */
  maxBytes: number;
}

/** Collects records and offset marks until a batch is full or its time is up. */
export class BatchBuilder<F> {
  #records: Buffer[] = [];
  #bytes = 0;
  #marks: Mark<F>[] = [];
  #seq = 0;
  /** When the first record of the open batch came (for the time bound). */
  #openedAt: number | undefined;

  constructor(readonly limits: BatchLimits) {}

  /** Records in the open batch. */
  get count(): number {
    return this.#records.length;
  }

  /** Whether anything (records or marks) waits in the open batch. */
  get empty(): boolean {
    return this.#records.length === 0 && this.#marks.length === 0;
  }

  get full(): boolean {
    return this.#records.length >= this.limits.maxRecords || this.#bytes >= this.limits.maxBytes;
  }

  /** When the open batch got its first entry; undefined when empty. */
  get openedAt(): number | undefined {
    return this.#openedAt;
  }

  addRecord(file: F, gen: number, record: Buffer, end: number, now: number): void {
    this.#records.push(record);
    this.#bytes += record.length;
    this.mark(file, gen, end, now);
  }

  /** Moves `file`'s mark without a record (blank or skipped lines). */
  mark(file: F, gen: number, end: number, now: number): void {
    this.#openedAt ??= now;
    const last = this.#marks[this.#marks.length - 1];
    if (last && last.file === file && last.gen === gen) last.end = end;
    else this.#marks.push({ file, gen, end });
  }

  /** Whether the open batch should go now: full, or its oldest entry waited `windowMs`. */
  due(now: number, windowMs: number): boolean {
    if (this.empty) return false;
    return this.full || now - (this.#openedAt ?? now) >= windowMs;
  }

  /** Closes the open batch and returns it; undefined when there is nothing in it. */
  take(): Batch<F> | undefined {
    if (this.empty) return undefined;
    const batch: Batch<F> = {
      seq: this.#seq++,
      records: this.#records,
      bytes: this.#bytes,
      marks: this.#marks,
    };
    this.#records = [];
    this.#bytes = 0;
    this.#marks = [];
    this.#openedAt = undefined;
    return batch;
  }
}

/**
 * Batches in flight, in cut order. `settle(batch)` marks one acknowledged and returns every
 * batch that is now part of the acknowledged frontier (possibly none, possibly several).
 */
export class AckFrontier<F> {
  #queue: Array<{ batch: Batch<F>; settled: boolean }> = [];

  /** Batches cut but not yet past the frontier. */
  get size(): number {
    return this.#queue.length;
  }

  /** Record bytes in batches not yet past the frontier. */
  get bytes(): number {
    let n = 0;
    for (const q of this.#queue) n += q.batch.bytes;
    return n;
  }

  push(batch: Batch<F>): void {
    const last = this.#queue[this.#queue.length - 1];
    if (last && last.batch.seq >= batch.seq) throw new Error("batches must be pushed in cut order");
    this.#queue.push({ batch, settled: false });
  }

  settle(batch: Batch<F>): Batch<F>[] {
    const entry = this.#queue.find((q) => q.batch === batch);
    if (!entry) throw new Error(`batch ${batch.seq} is not in flight`);
    entry.settled = true;
    let n = 0;
    while (n < this.#queue.length && this.#queue[n]?.settled) n++;
    return this.#queue.splice(0, n).map((q) => q.batch);
  }
}
