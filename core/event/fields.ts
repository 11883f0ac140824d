/** zod building blocks shared by the three format schemas. */
import { z } from "zod";
import { isIp } from "./ip.ts";

/** Longest transaction ID accepted. */
export const MAX_ID_LENGTH = 1024;
/** Longest `classification.rule_id`: it becomes a tag value, so it stays short and readable. */
export const MAX_RULE_ID_LENGTH = 256;

/** A transaction ID: a non-blank string (or a number, which some producers emit). */
export const txId = z
  .union([z.string(), z.number()], {
    error: (iss) => (iss.input === undefined ? "is missing" : "must be a string"),
  })
  .transform((v) => String(v))
  .refine((v) => v.trim().length > 0, { error: "is empty" })
  // Bounded so an alert (which carries it) always fits an asynchronous invocation.
  .refine((v) => v.length <= MAX_ID_LENGTH, { error: "is longer than 1024 characters" });

/** `client_ip`: required, an IPv4 or IPv6 address. */
export const clientIp = z
  .string({ error: (iss) => (iss.input === undefined ? "is missing" : "must be a string") })
  // The value is not echoed: reasons reach logs, and a mangled field may hold anything.
  .refine(isIp, { error: "is not an IPv4 or IPv6 address" });

/** `anomaly_score` when present: a finite JSON number ≥ 0 (a numeric string is invalid), truncated. */
export const anomalyScore = z
  .number({ error: "must be a finite JSON number >= 0" })
  .nonnegative({ error: "must be a finite JSON number >= 0" })
  // Beyond 2^53 the value cannot be stored as the integer field the point needs.
  .max(Number.MAX_SAFE_INTEGER, { error: "is out of range (above 2^53 - 1)" })
  .transform((v) => Math.trunc(v))
  .optional();

export const optString = z.string().nullish();

/** A rule ID as producers write it: a string (ModSecurity) or an integer (Coraza). */
export const ruleId = z
  .union([z.string(), z.number()])
  .nullish()
  .transform((v) => (v === null || v === undefined ? undefined : String(v).trim() || undefined));

/** Severity is read leniently: scoring maps integers and digit strings, anything else is 0 points. */
export const severity = z.unknown().optional();

/** An HTTP status code; anything that is not an integer in 0–999 is treated as absent. */
export const statusCode = z
  .unknown()
  .optional()
  .transform((v) =>
    typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 1000 ? v : undefined,
  );

/** No control characters and no trailing backslash: what a line-protocol tag value can carry. */
function isTagSafe(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return false;
  }
  return !v.endsWith("\\");
}

/** `classification` of the envelope (any format may carry it): `{ track, rule_id }`. */
export const classification = z
  .object({
    track: z.unknown().optional(),
    rule_id: z
      .union([z.string(), z.number()])
      .nullish()
      .transform((v) => (v === null || v === undefined ? undefined : String(v).trim() || undefined))
      .refine((v) => v === undefined || v.length <= MAX_RULE_ID_LENGTH, {
        error: "is longer than 256 characters",
      })
      // It becomes a tag value: no control characters, and no trailing backslash (line protocol
      // cannot escape one).
      .refine((v) => v === undefined || isTagSafe(v), {
        error: "has control characters or ends with a backslash",
      }),
  })
  .nullish();

export type Classification = z.output<typeof classification>;
