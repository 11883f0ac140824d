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
