/**
 * The one place the shipper writes to the stream. Everything the shipper sends goes through
 * {@link StreamProducer.add}; the stream key is chosen in one method,
 * {@link RedisStreamProducer.keyFor}: with `STREAM_SHARDS=N`, the shard a stable hash of the
 * record's transaction id picks (core/stream/keys.ts, the same rule `waf replay` follows), so
 * one transaction's records stay in order in one shard. Records are sent in one pipeline per
 * shard (a cluster pipeline must not span slots), all at once.
 */
import type { RedisClient } from "../lib/redis.ts";
import { type StreamShard, shardOfRecord } from "../stream/keys.ts";

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
  /** The stream's shards (core/stream/keys.ts `streamNames(...).shards`); one by default. */
  shards: readonly StreamShard[];
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
    private readonly redis: RedisClient,
    private readonly o: RedisProducerOptions,
  ) {
    this.#timeoutMs = o.timeoutMs ?? 15_000;
    this.#maxLen = String(o.maxLen);
  }

  /** The stream a record goes to: its shard's key. */
  keyFor(record: Buffer): string {
    const { shards } = this.o;
    return (shards[shardOfRecord(record, shards.length)] ?? shards[0])?.stream as string;
  }

  async add(records: readonly Buffer[]): Promise<void> {
    if (records.length === 0) return;
    const byKey = new Map<string, Buffer[]>();
    for (const record of records) {
      const key = this.keyFor(record);
      const list = byKey.get(key);
      if (list) list.push(record);
      else byKey.set(key, [record]);
    }
    await Promise.all([...byKey].map(([key, list]) => this.addTo(key, list)));
  }

  /** One pipelined round trip of XADDs to one key. */
  private async addTo(key: string, records: readonly Buffer[]): Promise<void> {
    const p = this.redis.pipeline();
    for (const record of records)
      p.xadd(key, "MAXLEN", "~", this.#maxLen, "*", this.o.field, record);
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
      throw new ProduceError(`XADD ${key}: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
    }
    if (!results) throw new ProduceError(`XADD ${key}: the pipeline was discarded`);
    for (const [err] of results) {
      if (err) throw new ProduceError(`XADD ${key}: ${err.message}`, { cause: err });
    }
  }
}
