/**
 * Where the stream side lives in Redis, from configuration and topology: the input stream (one
 * logical stream, `STREAM_SHARDS` keys), its consumer group, the record field and the
 * dead-letter stream of each shard. Every part of the product that touches them (reader,
 * producers, `waf` commands, live view, health, gauges) takes these names from here.
 *
 * - A single node with one shard: every key is exactly what it always was (`STREAM_KEY`,
 *   `DLQ_STREAM_KEY`): no migration.
 * - A cluster, or more than one shard: the keys a script touches together share a hash slot.
 *   Shard 0 keeps the stream's exact name and its dead-letter stream carries the tag
 *   `{<STREAM_KEY>}` (`{waf-realtime}:dlq`); shard i > 0 is `<STREAM_KEY>:s<n>` with
 *   `{<STREAM_KEY>:s<n>}:dlq`, n chosen so that the shards' slots are spread evenly over the
 *   slot space (a cluster made by `redis-cli --cluster create` gives each primary an equal
 *   range, so N shards land on different primaries when N ≤ primaries).
 *
 * Ordering is per shard: records of one transaction id always go to one shard, but records of
 * different shards are read independently.
 */
import type { Config } from "../config.ts";
import { hashSlot } from "../lib/slot.ts";

export interface StreamShard {
  index: number;
  /** The shard's stream key. */
  stream: string;
  /** The shard's dead-letter stream (same slot as `stream`). */
  dlq: string;
}

export interface StreamNames {
  /** The logical input stream (`STREAM_KEY`): shard 0's key. */
  stream: string;
  /** The consumer group the readers share (`CONSUMER_GROUP`). */
  group: string;
  /** The entry field holding the record (`STREAM_FIELD`). */
  field: string;
  /** Shard 0's dead-letter stream (`DLQ_STREAM_KEY` on a single node with one shard). */
  dlq: string;
  /** Every shard, index order; one element by default. */
  shards: StreamShard[];
}

export interface Topology {
  /** Redis Cluster (keys are placed by slot). */
  cluster: boolean;
  /** `STREAM_SHARDS`. */
  shards: number;
}

export const SINGLE: Topology = { cluster: false, shards: 1 };

const SLOTS = 16384;

/** Shard i's hash tag: the stream key for shard 0, else `<key>:s<n>` in the i-th slot range. */
function shardTags(streamKey: string, count: number): string[] {
  const tags = [streamKey];
  if (count === 1) return tags;
  const first = hashSlot(streamKey);
  const width = Math.floor(SLOTS / count);
  let n = 1;
  for (let i = 1; i < count; i++) {
    const from = (first + i * width) % SLOTS;
    for (; ; n++) {
      const tag = `${streamKey}:s${n}`;
      const offset = (hashSlot(tag) - from + SLOTS) % SLOTS;
      if (offset < width) {
        tags.push(tag);
        n++;
        break;
      }
    }
  }
  return tags;
}

export function streamNames(
  c: Pick<Config, "STREAM_KEY" | "CONSUMER_GROUP" | "STREAM_FIELD" | "DLQ_STREAM_KEY">,
  topology: Topology = SINGLE,
): StreamNames {
  const key = c.STREAM_KEY;
  const base = { stream: key, group: c.CONSUMER_GROUP, field: c.STREAM_FIELD };
  if (!topology.cluster && topology.shards === 1) {
    return {
      ...base,
      dlq: c.DLQ_STREAM_KEY,
      shards: [{ index: 0, stream: key, dlq: c.DLQ_STREAM_KEY }],
    };
  }
  // `waf-realtime:dlq` becomes `{waf-realtime}:dlq`; another name keeps itself after the tag.
  const suffix = c.DLQ_STREAM_KEY.startsWith(key)
    ? c.DLQ_STREAM_KEY.slice(key.length) || ":dlq"
    : `:${c.DLQ_STREAM_KEY}`;
  const shards = shardTags(key, topology.shards).map((tag, index) => ({
    index,
    stream: tag,
    dlq: `{${tag}}${suffix}`,
  }));
  return { ...base, dlq: shards[0]?.dlq as string, shards };
}

/** 32-bit FNV-1a over UTF-16 code units: stable across processes and versions. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The shard a transaction's records go to: a stable hash of its id. */
export function shardOf(txId: string, shards: number): number {
  return shards <= 1 ? 0 : fnv1a(txId) % shards;
}

/** Only this head of a record is searched for its transaction id. */
const TX_SCAN = 4096;
const TX_ID = /"(?:unique_id|id)"\s*:\s*(?:"((?:[^"\\]|\\.){1,1024})"|(-?\d{1,30}(?:\.\d+)?))/;

/**
 * The transaction id of a record's text, cheaply (no JSON parse): the first `"unique_id"` or
 * `"id"` string or number in its first 4 KiB — where ModSecurity, Coraza and the envelope put
 * it. Undefined when there is none; producers then shard by the whole text. Only a routing
 * key: the scorer still reads the record properly.
 */
export function txIdOf(record: string): string | undefined {
  const m = TX_ID.exec(record.length > TX_SCAN ? record.slice(0, TX_SCAN) : record);
  return m ? (m[1] ?? m[2]) : undefined;
}

/**
 * The shard of one record, as text or as the bytes a shipper read (only its head is looked at,
 * as Latin-1: the ids are ASCII, and no UTF-8 check is paid for). A record without a readable
 * id is placed by its head.
 */
export function shardOfRecord(record: string | Buffer, shards: number): number {
  if (shards <= 1) return 0;
  const head =
    typeof record === "string"
      ? record.slice(0, TX_SCAN)
      : record.toString("latin1", 0, Math.min(record.length, TX_SCAN));
  return shardOf(txIdOf(head) ?? head, shards);
}
