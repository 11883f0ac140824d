/**
 * Where the stream side lives in Redis, from configuration: the input stream, its consumer
 * group, the record field and the dead-letter stream. Every part of the product that touches
 * them (reader, `waf` commands, live view, health, gauges) takes these names from here.
 */
import type { Config } from "../config.ts";

export interface StreamNames {
  /** The input stream (`STREAM_KEY`). */
  stream: string;
  /** The consumer group the readers share (`CONSUMER_GROUP`). */
  group: string;
  /** The entry field holding the record (`STREAM_FIELD`). */
  field: string;
  /** The dead-letter stream (`DLQ_STREAM_KEY`). */
  dlq: string;
}

export function streamNames(
  c: Pick<Config, "STREAM_KEY" | "CONSUMER_GROUP" | "STREAM_FIELD" | "DLQ_STREAM_KEY">,
): StreamNames {
  return {
    stream: c.STREAM_KEY,
    group: c.CONSUMER_GROUP,
    field: c.STREAM_FIELD,
    dlq: c.DLQ_STREAM_KEY,
  };
}
