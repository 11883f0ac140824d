/** The three accepted audit-record formats (SPEC §2). */
export type EventFormat = "envelope" | "modsec3" | "coraza";

/** One rule match of an audit record, reduced to what scoring needs. */
export interface RuleMatch {
  /** The rule ID as text (`"942100"`); undefined when the message names no rule. */
  ruleId: string | undefined;
  /** The raw severity (integer, digit string or anything else); scoring decides what counts. */
  severity: unknown;
  /** The message text (`message`), used to find `Total Score: N`. */
  message: string | undefined;
  /** The rule's own `msg`, the second place `Total Score: N` may appear. */
  msg: string | undefined;
}

/**
 * The normalised event: the one shape every format becomes. Pure data; no secrets
 * (headers and bodies are dropped at normalisation).
 */
export interface WafEvent {
  format: EventFormat;
  txId: string;
  /** The client address exactly as the record gave it (validated as IPv4 or IPv6). */
  clientIp: string;
  /** `transaction.anomaly_score` when the key was present (truncated toward zero). */
  anomalyScore: number | undefined;
  /** A non-empty `classification.rule_id`, as a string. */
  classificationRuleId: string | undefined;
  messages: RuleMatch[];
  /**
   * The event's own time in nanoseconds since the epoch, truncated to the precision the
   * record carries (see {@link timePrecisionNs}); undefined when the record has none.
   */
  timeNs: bigint | undefined;
  /** 1e9 for second-resolution times (ModSecurity), 1e6 for Coraza (kept to the millisecond). */
  timePrecisionNs: bigint;
  method: string | undefined;
  uri: string | undefined;
  hostname: string | undefined;
  /** The HTTP response status; undefined when the record has none. */
  responseCode: number | undefined;
}

/** What normalisation returns: the event, or why the record is invalid (never thrown). */
export type NormaliseResult = { ok: true; event: WafEvent } | { ok: false; reason: string };
