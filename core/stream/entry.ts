/**
 * The stream contract, defined once (docs/reference.md, "Delivery"): what an input entry holds,
 * what a dead-letter entry holds, and how both are read back. The reader, the local event
 * queue, `waf dlq`, `waf status` and the live view all go through these names; nothing else
 * spells a field name.
 */
import { fieldMap, fieldValue } from "../lib/fields.ts";

/** One stream entry as Redis returns it: `fields` is `null` when it was deleted while pending. */
export interface StreamEntry {
  id: string;
  fields: string[] | null;
}

/**
 * Input entries: the record's JSON lives in the `STREAM_FIELD` field (default `event`); an entry
 * redriven from the dead-letter stream also carries {@link ORIGIN_FIELD}. Other fields are
 * ignored.
 */
export const ORIGIN_FIELD = "origin_id";

/** What an input entry holds, read with the configured record field. */
export interface InputRecord {
  /** The record's text; undefined when the entry has no such field (or was deleted). */
  data: string | undefined;
  /**
   * The entry a redriven record first arrived as. A producer can write the field too: anything
   * but a stream entry ID (`<ms>-<seq>`) is ignored, so it stays small and plain.
   */
  originId: string | undefined;
}

export function inputRecord(entry: StreamEntry, recordField: string): InputRecord {
  const origin = fieldValue(entry.fields, ORIGIN_FIELD);
  return {
    data: fieldValue(entry.fields, recordField),
    originId: origin !== undefined && parseStreamId(origin) ? origin : undefined,
  };
}

/** The fields of an entry put on the input stream: the record, and where it came from. */
export function inputFields(recordField: string, data: string, originId?: string): string[] {
  return originId === undefined ? [recordField, data] : [recordField, data, ORIGIN_FIELD, originId];
}

/**
 * Field names of a dead-letter entry, besides the record itself (kept verbatim under the
 * `STREAM_FIELD` name, absent when the input entry had none).
 */
export const DLQ_FIELDS = {
  reason: "reason",
  attempts: "attempts",
  entryId: "entry_id",
  originId: ORIGIN_FIELD,
  stream: "stream",
  group: "group",
  consumer: "consumer",
  failedAt: "failed_at",
} as const;

/** The order an operator reads a dead-letter entry's fields in. */
export const DLQ_FIELD_ORDER: readonly string[] = [
  DLQ_FIELDS.reason,
  DLQ_FIELDS.attempts,
  DLQ_FIELDS.failedAt,
  DLQ_FIELDS.entryId,
  DLQ_FIELDS.originId,
  DLQ_FIELDS.stream,
  DLQ_FIELDS.group,
  DLQ_FIELDS.consumer,
];

/** A dead-lettered record and why. */
export interface DeadLetter {
  reason: string;
  /** Failed invocations of the record (1 for records rejected at once). */
  attempts: number;
  /** The input entry it was. */
  entryId: string;
  /** For a record redriven earlier: the entry it first arrived as. */
  originId?: string;
  stream: string;
  group: string;
  consumer: string;
  /** ISO time. */
  failedAt: string;
  /** The record verbatim; undefined when the input entry had no record field. */
  record?: string;
}

/** The XADD field list of a dead-letter entry. */
export function deadLetterFields(d: DeadLetter, recordField: string): string[] {
  const f = [
    DLQ_FIELDS.reason,
    d.reason,
    DLQ_FIELDS.attempts,
    String(d.attempts),
    DLQ_FIELDS.entryId,
    d.entryId,
    DLQ_FIELDS.stream,
    d.stream,
    DLQ_FIELDS.group,
    d.group,
    DLQ_FIELDS.consumer,
    d.consumer,
    DLQ_FIELDS.failedAt,
    d.failedAt,
  ];
  if (d.originId !== undefined) f.push(DLQ_FIELDS.originId, d.originId);
  if (d.record !== undefined) f.push(recordField, d.record);
  return f;
}

/** A dead-letter entry as read back: its own ID and every field it holds. */
export interface DlqEntry {
  /** The DLQ entry's own ID. */
  id: string;
  fields: Record<string, string>;
}

export function dlqEntry(entry: StreamEntry): DlqEntry {
  return { id: entry.id, fields: fieldMap<string>(entry.fields) };
}

/** A stream entry ID (`1718000000000-3`) as its two parts; undefined for anything else. */
export function parseStreamId(id: string): { ms: bigint; seq: bigint } | undefined {
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  return m ? { ms: BigInt(m[1] as string), seq: BigInt(m[2] as string) } : undefined;
}

/** Milliseconds of a stream entry ID; undefined for anything else. */
export function streamIdMs(id: string): number | undefined {
  const p = parseStreamId(id);
  return p ? Number(p.ms) : undefined;
}
