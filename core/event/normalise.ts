/**
 * Format detection and normalisation (reference §2): any record text becomes one {@link WafEvent}
 * or a reason. Never throws: hostile input (not JSON, wrong types, huge or deeply nested
 * values, `__proto__` keys) comes back as `{ ok: false, reason }`.
 */
import type { z } from "zod";
import { corazaFast, corazaSchema, corazaToEvent } from "./coraza.ts";
import { envelopeFast, envelopeSchema, envelopeToEvent } from "./envelope.ts";
import { INVALID } from "./fields.ts";
import { modsec3Fast, modsec3Schema, modsec3ToEvent } from "./modsec3.ts";
import type { EventFormat, NormaliseResult } from "./types.ts";

export interface NormaliseOptions {
  /** Records larger than this many UTF-8 bytes are invalid (`MAX_RECORD_BYTES`). */
  maxRecordBytes: number;
}

const MAX_REASON = 300;

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** UTF-8 length without allocating, stopping early once past `limit`. */
export function utf8Length(text: string, limit = Number.POSITIVE_INFINITY): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
    if (bytes > limit) return bytes;
  }
  return bytes;
}

/**
 * Which of the three formats a parsed record has, by shape; or why it has none.
 * Coraza keeps `messages` at the top level; ModSecurity v3 stamps `time_stamp`, `unique_id`
 * or `producer`; the envelope has neither. ModSecurity 2.x (`audit_data`, `transaction_id`)
 * is recognised so its rejection says what it is.
 */
export function detectFormat(rec: unknown): EventFormat | { reason: string } {
  if (!isObject(rec)) {
    const kind = rec === null ? "null" : Array.isArray(rec) ? "an array" : typeof rec;
    return { reason: `not a JSON object (got ${kind})` };
  }
  const tx = rec.transaction;
  if ("audit_data" in rec || (isObject(tx) && ("transaction_id" in tx || "remote_address" in tx))) {
    return {
      reason:
        "unsupported format: ModSecurity 2.x audit log (use the JSON audit log of ModSecurity v3 or Coraza)",
    };
  }
  if (!isObject(tx)) {
    return {
      reason:
        tx === undefined
          ? "unknown format: no transaction object"
          : "unknown format: transaction is not an object",
    };
  }
  if ("messages" in rec || "unix_timestamp" in tx || "is_interrupted" in tx) return "coraza";
  if ("time_stamp" in tx || "unique_id" in tx || "producer" in tx) return "modsec3";
  return "envelope";
}

function describeIssue(format: EventFormat, issue: z.core.$ZodIssue): string {
  const path = issue.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
  const where = path.replace(/^\./, "");
  let msg = issue.message;
  if (issue.code === "invalid_type" && msg.includes("received undefined")) msg = "is missing";
  return `invalid ${format} record: ${where || "record"} ${msg}`.slice(0, MAX_REASON);
}

/**
 * Normalises an already-parsed record. A valid record takes the formats' fast readers (the
 * same rules written out by hand, several times cheaper than zod); anything they are not sure
 * about goes through the zod schema, which decides and words the reason.
 */
export function normaliseValue(rec: unknown): NormaliseResult {
  const format = detectFormat(rec);
  if (typeof format !== "string") return { ok: false, reason: format.reason };
  const fast =
    format === "envelope"
      ? envelopeFast(rec as Record<string, unknown>)
      : format === "modsec3"
        ? modsec3Fast(rec as Record<string, unknown>)
        : corazaFast(rec as Record<string, unknown>);
  if (fast !== INVALID) return { ok: true, event: fast };
  return normaliseWithSchema(rec, format);
}

/** The zod path: the single source of truth for what is valid and why not. */
export function normaliseWithSchema(rec: unknown, format: EventFormat): NormaliseResult {
  switch (format) {
    case "envelope": {
      const r = envelopeSchema.safeParse(rec);
      if (!r.success) return { ok: false, reason: describeIssue(format, firstIssue(r.error)) };
      return { ok: true, event: envelopeToEvent(r.data) };
    }
    case "modsec3": {
      const r = modsec3Schema.safeParse(rec);
      if (!r.success) return { ok: false, reason: describeIssue(format, firstIssue(r.error)) };
      const id = r.data.transaction.unique_id ?? r.data.transaction.id;
      if (id === undefined) {
        return { ok: false, reason: "invalid modsec3 record: transaction.unique_id is missing" };
      }
      return { ok: true, event: modsec3ToEvent(r.data, id) };
    }
    case "coraza": {
      const r = corazaSchema.safeParse(rec);
      if (!r.success) return { ok: false, reason: describeIssue(format, firstIssue(r.error)) };
      return { ok: true, event: corazaToEvent(r.data) };
    }
  }
}

function firstIssue(error: z.ZodError): z.core.$ZodIssue {
  // Report the required identity fields first: they are what an operator fixes upstream.
  const issues = error.issues;
  const key = (i: z.core.$ZodIssue) => String(i.path[i.path.length - 1] ?? "");
  return (
    issues.find((i) => ["id", "unique_id"].includes(key(i)) && i.path.length === 2) ??
    issues.find((i) => key(i) === "client_ip") ??
    (issues[0] as z.core.$ZodIssue)
  );
}

/**
 * Why `JSON.parse` refused a record, as fixed text: V8's messages quote the input (`Unexpected
 * token 'C', "Cookie: se"... is not valid JSON`), and reasons reach logs and the dead-letter
 * stream. Only the kind of error and its position survive.
 */
export function jsonErrorReason(err: unknown): string {
  const message = err instanceof Error ? err.message : "";
  const at = /at position (\d{1,10})/.exec(message)?.[1];
  const where = at === undefined ? "" : ` at position ${at}`;
  if (/Unexpected end of JSON input/.test(message)) return "not JSON: unexpected end of input";
  if (/after JSON/.test(message)) return `not JSON: unexpected data after the value${where}`;
  if (/escaped character|escape/i.test(message)) return `not JSON: bad escape${where}`;
  return `not JSON: syntax error${where}`;
}

/**
 * Normalises one record's text: size check, JSON parse, format detection, schema validation.
 * @example
 * const r = normalise(line, { maxRecordBytes: 1 << 20 });
 * if (!r.ok) deadLetter(r.reason);
 */
export function normalise(text: string, opts: NormaliseOptions): NormaliseResult {
  try {
    if (typeof text !== "string") return { ok: false, reason: "record is not a string" };
    // Cheap bounds first: a char is 1–3 UTF-8 bytes (a surrogate pair 4 for 2 chars).
    if (
      text.length > opts.maxRecordBytes ||
      (text.length * 3 > opts.maxRecordBytes &&
        utf8Length(text, opts.maxRecordBytes) > opts.maxRecordBytes)
    ) {
      return {
        ok: false,
        reason: `record too large: over MAX_RECORD_BYTES (${opts.maxRecordBytes} bytes)`,
      };
    }
    if (text.trim() === "") return { ok: false, reason: "empty record" };
    let rec: unknown;
    try {
      rec = JSON.parse(text);
    } catch (err) {
      return { ok: false, reason: jsonErrorReason(err) };
    }
    return normaliseValue(rec);
  } catch (err) {
    // Defence in depth: a parser or engine limit (e.g. stack depth) must not escape.
    return {
      ok: false,
      // The error's name only: a message may quote the record.
      reason: `unreadable record (${(err as Error)?.name ?? "error"})`,
    };
  }
}
