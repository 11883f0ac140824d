/**
 * The one place the shipper writes to the stream. Everything the shipper sends goes through
 * {@link StreamProducer.add}; the stream key is chosen in one method,
 * {@link RedisStreamProducer.keyFor}.
 *
 * Sharded streams (`STREAM_SHARDS=N`) and Redis Cluster key tags plug in there: pick the shard
 * from a stable hash of the record's transaction id (read from the bytes without trusting
 * them), return `<STREAM_KEY>:{<shard>}` or whatever the reader side agrees on, and group the
 * pipeline by key (a cluster pipeline must not span slots). Nothing else in the shipper knows
 * the key.
 */
import type { Redis } from "ioredis";

/** Appends audit records to the stream, verbatim. */
export interface StreamProducer {
  /**
   * Adds each record as one entry, in order; resolves once Redis acknowledged every one of
   * them, rejects if any failed (the caller retries the whole batch: entries added before the
   * failure are then added twice, which the pipeline downstream absorbs).
   */
  add(records: readonly Buffer[]): Promise<void>;
}

export interface RedisProducerOptions {
  /** `STREAM_KEY`. */
  streamKey: string;
  /** `STREAM_FIELD`: the entry field holding the record. */
  field: string;
  /** `SHIP_MAXLEN`: `XADD … MAXLEN ~ N`, the producer trims its stream (reference §2). */
  maxLen: number;
  /**
   * A batch without an answer after this long counts as failed, and the connection is dropped
   * and made again: a half-open TCP connection (a NAT or firewall that forgot us) would
   * otherwise hold the shipper forever.
   */
  timeoutMs?: number;
}

/** Raised when Redis refused or did not answer; the message names the key and the cause. */
export class ProduceError extends Error {
  override readonly name = "ProduceError";
}

/** {@link StreamProducer} over one ioredis connection: one pipelined round trip per batch. */
export class RedisStreamProducer implements StreamProducer {
  readonly #timeoutMs: number;
  readonly #maxLen: string;

  constructor(
    private readonly redis: Redis,
    private readonly o: RedisProducerOptions,
  ) {
    this.#timeoutMs = o.timeoutMs ?? 15_000;
    this.#maxLen = String(o.maxLen);
  }

  /**
   * The stream a record goes to. Today: `STREAM_KEY` for every record. The shard / cluster
   * key-tag choice belongs here and nowhere else.
   */
  keyFor(_record: Buffer): string {
    return this.o.streamKey;
  }

  async add(records: readonly Buffer[]): Promise<void> {
    if (records.length === 0) return;
    const p = this.redis.pipeline();
    for (const record of records)
      p.xadd(this.keyFor(record), "MAXLEN", "~", this.#maxLen, "*", this.o.field, record);
    let timer: NodeJS.Timeout | undefined;
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await Promise.race([
        p.exec(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            // Drop the connection (ioredis reconnects): whatever was sent is answered or lost.
            this.redis.disconnect(true);
            reject(new ProduceError(`no answer from Redis within ${this.#timeoutMs} ms`));
          }, this.#timeoutMs);
        }),
      ]);
    } catch (err) {
      if (err instanceof ProduceError) throw err;
      throw new ProduceError(`XADD ${this.o.streamKey}: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
    if (!results) throw new ProduceError(`XADD ${this.o.streamKey}: the pipeline was discarded`);
    for (const [err] of results) {
      if (err) throw new ProduceError(`XADD ${this.o.streamKey}: ${err.message}`, { cause: err });
    }
  }
}
