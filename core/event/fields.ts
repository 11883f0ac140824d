/** zod building blocks shared by the three format schemas. */
import { z } from "zod";
import { isIp } from "./ip.ts";
import type { EngineMode, RuleMatch } from "./types.ts";

/**
 * Largest anomaly score accepted (real ones are in the tens). With weights bounded by config
 * (±10^6 per category), severity stays far inside the exact integers (2^53 ≈ 9·10^15).
 */
export const MAX_ANOMALY_SCORE = 1e15;

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
  // Bounded so severity (score + weights + reputation) stays an exact integer for the point.
  .max(MAX_ANOMALY_SCORE, { error: "is out of range (above 10^15)" })
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

/*
 * Facts the `crs` scoring profile reads. Each is read leniently by one function that both the
 * zod path and the fast readers call, so both agree by construction: a value of the wrong type
 * or shape is simply absent, never a reason to refuse the record. Every read is bounded.
 */

/** At most this many `tags` of one rule are looked at (CRS rules carry about ten). */
const MAX_TAGS = 64;
const PL_TAG = "paranoia-level/";

/**
 * The paranoia level a rule's `tags` declare (`paranoia-level/1` … `/4`); undefined when none.
 * @example paranoiaLevelOf(["attack-sqli", "paranoia-level/2"]) // 2
 */
export function paranoiaLevelOf(tags: unknown): number | undefined {
  if (!Array.isArray(tags)) return undefined;
  const n = Math.min(tags.length, MAX_TAGS);
  for (let i = 0; i < n; i++) {
    const t: unknown = tags[i];
    if (typeof t === "string" && t.length === PL_TAG.length + 1 && t.startsWith(PL_TAG)) {
      const level = t.charCodeAt(PL_TAG.length) - 0x30;
      if (level >= 1 && level <= 4) return level;
    }
  }
  return undefined;
}

/** Only the head of `details.match` is read: the operator and its parameter come first. */
const MAX_MATCH_SCAN = 400;
/** The largest threshold believed; CRS defaults to 5, real set-ups stay in the tens. */
export const MAX_THRESHOLD = 1_000_000;
const THRESHOLD =
  /with parameter `(\d{1,7})' against variable `TX:(?:BLOCKING_INBOUND_ANOMALY_SCORE|INBOUND_ANOMALY_SCORE|ANOMALY_SCORE)'/i;

/**
 * The inbound anomaly threshold of an evaluation message: for rules 949110/949111 only, the
 * `parameter` of ModSecurity's `details.match` when the variable compared is the inbound anomaly
 * score (CRS 3 `TX:ANOMALY_SCORE`, CRS 4 `TX:BLOCKING_INBOUND_ANOMALY_SCORE`); undefined
 * otherwise, and for values outside 1–10^6.
 * @example
 * thresholdOf("949110", "Matched \"Operator `Ge' with parameter `5' against variable `TX:ANOMALY_SCORE' (Value: `10' )") // 5
 */
export function thresholdOf(ruleId: string | undefined, match: unknown): number | undefined {
  if ((ruleId !== "949110" && ruleId !== "949111") || typeof match !== "string") return undefined;
  const m = THRESHOLD.exec(match.length > MAX_MATCH_SCAN ? match.slice(0, MAX_MATCH_SCAN) : match);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n >= 1 && n <= MAX_THRESHOLD ? n : undefined;
}

const ENGINE_MODES: Readonly<Record<string, EngineMode>> = Object.freeze({
  enabled: "on",
  on: "on",
  detectiononly: "detection-only",
  disabled: "off",
  off: "off",
});

/**
 * The rule-engine mode a producer states: ModSecurity `secrules_engine` (`Enabled`,
 * `DetectionOnly`, `Disabled`) or Coraza `rule_engine` (`On`, `DetectionOnly`, `Off`), in any
 * case; undefined for anything else.
 */
export function engineModeOf(
  producer: unknown,
  field: "secrules_engine" | "rule_engine",
): EngineMode | undefined {
  if (!isRecord(producer)) return undefined;
  const v = producer[field];
  if (typeof v !== "string" || v.length > 32) return undefined;
  const key = v.trim().toLowerCase();
  // hasOwn: "constructor" or "__proto__" must not find Object.prototype's members.
  return Object.hasOwn(ENGINE_MODES, key) ? ENGINE_MODES[key] : undefined;
}

/** Coraza's `is_interrupted`: a boolean, else undefined. */
export function interruptedOf(v: unknown): boolean | undefined {
  return typeof v === "boolean" ? v : undefined;
}

/** Longest rule ID kept from a message; CRS's are six digits. */
export const MAX_MESSAGE_RULE_ID = 64;

/**
 * A message's rule ID as every output can carry it: well-formed UTF-16, no control character,
 * no backslash (line protocol cannot escape a trailing one), at most 64 characters. An odd ID
 * is made safe, never a reason to refuse the record: a record must not lose its alert over it.
 * @example boundRuleId("942100") // "942100"; boundRuleId("x\\") // "x/"
 */
export function boundRuleId(id: string | undefined): string | undefined {
  if (id === undefined) return undefined;
  const s = id.length > MAX_MESSAGE_RULE_ID ? id.slice(0, MAX_MESSAGE_RULE_ID) : id;
  let out = "";
  let changed = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const unsafe = c < 0x20 || c === 0x7f || c === 0x5c;
    if (unsafe) changed = true;
    out += unsafe ? (c === 0x5c ? "/" : "?") : s[i];
  }
  return (changed ? out : s).toWellFormed();
}

/** One rule match from its parts, the facts above included (both paths build it here). */
export function ruleMatch(
  ruleId: string | undefined,
  severity: unknown,
  message: string | undefined,
  msg: string | undefined,
  tags: unknown,
  match: unknown,
): RuleMatch {
  const id = boundRuleId(ruleId);
  return {
    ruleId: id,
    severity,
    message,
    msg,
    paranoiaLevel: paranoiaLevelOf(tags),
    threshold: thresholdOf(id, match),
  };
}

/** A rule match without details (no rule named). */
export function bareMatch(message: string | undefined): RuleMatch {
  return ruleMatch(undefined, undefined, message, undefined, undefined, undefined);
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

/*
 * Fast readers: the same rules as the schemas above, written out by hand for the common case
 * of a valid record. Each returns `INVALID` at the first value it is not sure about, and the
 * caller then runs the zod schema, which decides and words the reason. So a fast reader may be
 * stricter than its schema, never more lenient, and its output must equal the schema's.
 */

/** Returned by a fast reader for "not sure: ask the schema". */
export const INVALID: unique symbol = Symbol("invalid");
export type Fast<T> = T | typeof INVALID;

/** A plain JSON object (what `z.object` accepts). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** {@link txId}: a non-blank string or a finite number, as a string of at most 1024 chars. */
export function fastTxId(v: unknown): Fast<string> {
  let s: string;
  if (typeof v === "string") s = v;
  else if (typeof v === "number" && Number.isFinite(v)) s = String(v);
  else return INVALID;
  if (s.length > MAX_ID_LENGTH || s.trim().length === 0) return INVALID;
  return s;
}

/** {@link clientIp}. */
export function fastClientIp(v: unknown): Fast<string> {
  return typeof v === "string" && isIp(v) ? v : INVALID;
}

/** {@link anomalyScore}: absent, or a finite number in 0..10^15, truncated. */
export function fastAnomalyScore(v: unknown): Fast<number | undefined> {
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !(v >= 0) || v > MAX_ANOMALY_SCORE) return INVALID;
  return Math.trunc(v);
}

/** {@link optString}, read as the events use it: null and absent are both undefined. */
export function fastOptString(v: unknown): Fast<string | undefined> {
  if (typeof v === "string") return v;
  return v === undefined || v === null ? undefined : INVALID;
}

/** {@link ruleId}. */
export function fastRuleId(v: unknown): Fast<string | undefined> {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v.trim() || undefined;
  if (typeof v === "number" && Number.isFinite(v)) return String(v).trim() || undefined;
  return INVALID;
}

/** {@link statusCode}. */
export function fastStatusCode(v: unknown): number | undefined {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 1000 ? v : undefined;
}

/** A nullish object: the object, `undefined` for null/absent, INVALID otherwise. */
export function fastOptObject(v: unknown): Fast<Record<string, unknown> | undefined> {
  if (v === undefined || v === null) return undefined;
  return isRecord(v) ? v : INVALID;
}

/** {@link classification}'s `rule_id` (the only part events use). */
export function fastClassificationRuleId(v: unknown): Fast<string | undefined> {
  const c = fastOptObject(v);
  if (c === INVALID || c === undefined) return c;
  const id = fastRuleId(c.rule_id);
  if (id !== undefined && id !== INVALID && (id.length > MAX_RULE_ID_LENGTH || !isTagSafe(id))) {
    return INVALID;
  }
  return id;
}

/**
 * The rule matches of a nullish `messages` array whose items are
 * `{ message, <detailsKey>: { <idKey>, severity, msg, tags, match } }` (details nullish).
 */
export function fastMessages(
  v: unknown,
  detailsKey: "details" | "data",
  idKey: "ruleId" | "id",
): Fast<RuleMatch[]> {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return INVALID;
  const out: RuleMatch[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const m: unknown = v[i];
    if (!isRecord(m)) return INVALID;
    const message = fastOptString(m.message);
    if (message === INVALID) return INVALID;
    const d = fastOptObject(m[detailsKey]);
    if (d === INVALID) return INVALID;
    if (d === undefined) {
      out[i] = bareMatch(message);
      continue;
    }
    const ruleId = fastRuleId(d[idKey]);
    const msg = fastOptString(d.msg);
    if (ruleId === INVALID || msg === INVALID) return INVALID;
    out[i] = ruleMatch(ruleId, d.severity, message, msg, d.tags, d.match);
  }
  return out;
}

/** What the three formats read the same way, once the transaction ID is settled. */
export interface FastCommon {
  clientIp: string;
  anomalyScore: number | undefined;
  classificationRuleId: string | undefined;
  request: Record<string, unknown> | undefined;
  response: Record<string, unknown> | undefined;
  messages: RuleMatch[];
  method: string | undefined;
  uri: string | undefined;
}

/**
 * The fields every format shares, read without zod: `client_ip`, `anomaly_score`,
 * `classification.rule_id`, `request.{method,uri}`, `response` and the messages (found at
 * `messages`, each with its rule under `<detailsKey>.<idKey>`). `INVALID` when any is in doubt.
 */
export function fastCommon(
  rec: Record<string, unknown>,
  tx: Record<string, unknown>,
  messagesAt: unknown,
  detailsKey: "details" | "data",
  idKey: "ruleId" | "id",
): Fast<FastCommon> {
  const clientIp = fastClientIp(tx.client_ip);
  const anomalyScore = fastAnomalyScore(tx.anomaly_score);
  const classificationRuleId = fastClassificationRuleId(rec.classification);
  const request = fastOptObject(tx.request);
  const response = fastOptObject(tx.response);
  const messages = fastMessages(messagesAt, detailsKey, idKey);
  if (
    clientIp === INVALID ||
    anomalyScore === INVALID ||
    classificationRuleId === INVALID ||
    request === INVALID ||
    response === INVALID ||
    messages === INVALID
  ) {
    return INVALID;
  }
  const method = request === undefined ? undefined : fastOptString(request.method);
  const uri = request === undefined ? undefined : fastOptString(request.uri);
  if (method === INVALID || uri === INVALID) return INVALID;
  return { clientIp, anomalyScore, classificationRuleId, request, response, messages, method, uri };
}
