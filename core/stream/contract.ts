/**
 * The wire contract between the stream reader and the scoring function (reference §5),
 * and between the scoring function and the alert function (reference §4).
 */

/** One Redis Stream entry as the reader hands it to the scorer. */
export interface StreamRecord {
  /** The stream entry ID, e.g. `1700000000000-0`. Used as `itemIdentifier`. */
  id: string;
  /** The raw value of the `STREAM_FIELD` field (a JSON string, not yet parsed). */
  data: string;
  /** How many times this entry has been delivered (1 on first delivery). */
  deliveryCount: number;
  /**
   * For a record redriven from the dead-letter stream: the ID of the stream entry it first
   * arrived as. Events without a time of their own are timed by it, so a redriven record
   * rewrites its own point instead of adding a second one.
   */
  originId?: string;
  /**
   * The shard of the stream it came from (`STREAM_SHARDS` > 1; absent means 0): an entry ID is
   * unique within its shard only, so the point of an event without a time of its own is timed
   * by both.
   */
  shard?: number;
}

export interface ScoreRequest {
  records: StreamRecord[];
}

export interface BatchItemFailure {
  itemIdentifier: string;
}

export interface RejectedItem {
  itemIdentifier: string;
  reason: string;
}

/** Entries in neither list are done: point accepted and, when critical, alert durably queued. */
export interface ScoreResponse {
  batchItemFailures: BatchItemFailure[];
  rejected: RejectedItem[];
}

const NON_ASCII = /[\u0080-\uffff]/g;

function escapeNonAscii(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/** `JSON.stringify(text)` with every non-ASCII character as a `\uXXXX` escape. */
function asciiJson(text: string): string {
  const json = JSON.stringify(text);
  // One native scan; only the rare text beyond ASCII pays for the replacement.
  NON_ASCII.lastIndex = 0;
  return NON_ASCII.test(json) ? json.replace(NON_ASCII, escapeNonAscii) : json;
}

/**
 * One record of a {@link ScoreRequest} serialised as JSON, all ASCII: characters beyond ASCII
 * travel as `\uXXXX` escapes (JSON.parse gives back the same string). An ASCII payload is as
 * many bytes as it has characters, so a batch is measured by adding lengths, turned into bytes
 * by a plain copy, and decoded by the scorer on the fast path. Entry IDs are Redis's own
 * (`<ms>-<seq>`): they need no escaping.
 */
export function serialiseRecord(r: StreamRecord): string {
  const data = asciiJson(r.data);
  // origin_id is a stream field a producer may set: serialised like any string.
  const origin = r.originId === undefined ? "" : `,"originId":${asciiJson(r.originId)}`;
  const shard = r.shard === undefined ? "" : `,"shard":${r.shard}`;
  return `{"id":"${r.id}","data":${data},"deliveryCount":${r.deliveryCount}${origin}${shard}}`;
}

/** The size of a {@link requestPayload} body whose parts have these lengths. */
export function requestBytes(partLengths: readonly number[]): number {
  let bytes = REQUEST_OVERHEAD_BYTES + Math.max(0, partLengths.length - 1);
  for (const n of partLengths) bytes += n;
  return bytes;
}

const COMMA = 0x2c;

/**
 * The request body of serialised records (see {@link serialiseRecord}), `{"records":[…]}`,
 * written part by part into one buffer of exactly `bytes` bytes (the parts' lengths, a comma
 * between parts and {@link REQUEST_OVERHEAD_BYTES}): no joined string is built and copied again.
 */
export function requestPayload(parts: readonly string[], bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let at = out.write('{"records":[', 0, "latin1");
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) out[at++] = COMMA;
    at += out.write(parts[i] as string, at, "latin1");
  }
  at += out.write("]}", at, "latin1");
  if (at !== bytes) throw new Error(`request payload is ${at} bytes, ${bytes} were counted`);
  return out;
}

/** Bytes {@link requestPayload} adds around its parts (the commas between them aside). */
export const REQUEST_OVERHEAD_BYTES = 14;

/**
 * The reader cuts a batch when its request body would pass this many bytes: below Lambda's
 * 6 MB (6,291,456-byte) synchronous payload limit with room for the SDK's envelope. A batch is
 * cut by bytes, not only by `BATCH_SIZE`, so a large batch of typical records fits while one
 * huge record travels alone.
 */
export const MAX_REQUEST_BYTES = 5_500_000;

/**
 * The most bytes one record byte can take in the body: a control character becomes a
 * six-byte `\u00XX` escape (non-ASCII text at most triples: `é` is 2 bytes, `\u00e9` 6).
 */
export const MAX_ESCAPE_FACTOR = 6;

/**
 * An entry's fields around its data at their longest: two 41-character IDs (id, originId), the
 * delivery count, the shard, the quotes and the comma (~153 bytes).
 */
export const RECORD_OVERHEAD_BYTES = 160;

/** What a reader holds besides its batches (code, clients, buffers): ~80 MB RSS when idle. */
export const READER_BASE_HEAP_BYTES = 64 * 2 ** 20;

/**
 * The most heap a reader can need: every read it may hold at once (one per dispatch slot, one
 * read ahead per shard), each of `batchSize` records at `maxRecordBytes` (×2: a JS string of
 * mostly ASCII with one wider character takes two bytes a character), plus two request bodies
 * (the batch being written and the one being cut: a waiting batch is serialised only once it has
 * a slot). infra/stages.ts checks every stage against the reader's heap limit with it.
 */
export function readerWorstHeapBytes(o: {
  maxInFlight: number;
  shards: number;
  batchSize: number;
  maxRecordBytes: number;
}): number {
  const perRead = o.batchSize * o.maxRecordBytes * 2 + 2 * MAX_REQUEST_BYTES;
  return (o.maxInFlight + o.shards) * perRead + READER_BASE_HEAP_BYTES;
}
