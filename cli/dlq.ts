/**
 * `waf dlq list|show|redrive`: how dead-lettered records read to an operator. The entries
 * come from core/stream/dlq.ts; their fields are the stream contract's (core/stream/entry.ts).
 */
import { DLQ_FIELD_ORDER, DLQ_FIELDS, type DlqEntry } from "../core/stream/entry.ts";
import { clean, table, truncate } from "./format.ts";

/** The DLQ entries as a table: the record is shown as a one-line preview. */
export function dlqTable(entries: DlqEntry[], field: string): string {
  return table(
    ["DLQ ID", "FAILED AT", "TRIES", "STREAM ENTRY", "REASON", "RECORD"],
    entries.map(({ id, fields: f }) => [
      id,
      clean(f[DLQ_FIELDS.failedAt] ?? "-")
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z"),
      clean(f[DLQ_FIELDS.attempts] ?? "-"),
      clean(f[DLQ_FIELDS.entryId] ?? "-"),
      truncate(clean(f[DLQ_FIELDS.reason] ?? "-"), 60),
      f[field] === undefined ? "(none)" : truncate(clean(f[field] ?? ""), 50),
    ]),
  );
}

/** Every field of one entry, the record last and whole. */
export function dlqDetails(e: DlqEntry, field: string): string {
  const order = DLQ_FIELD_ORDER;
  const names = [
    ...order.filter((k) => k in e.fields),
    ...Object.keys(e.fields).filter((k) => !order.includes(k) && k !== field),
  ];
  const pad = Math.max(8, ...names.map((n) => n.length));
  const lines = [`${"id".padEnd(pad)}  ${e.id}`];
  for (const n of names) lines.push(`${clean(n).padEnd(pad)}  ${clean(e.fields[n] ?? "")}`);
  const record = e.fields[field];
  lines.push(
    record === undefined
      ? `${field.padEnd(pad)}  (no record: the stream entry had no "${field}" field)`
      : `${field.padEnd(pad)}  (${Buffer.byteLength(record)} bytes, verbatim)\n${clean(record)}`,
  );
  return lines.join("\n");
}
