/** The three accepted audit-record formats (reference §2). */
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
  /** The rule's `paranoia-level/N` tag (1–4); undefined when it has none. */
  paranoiaLevel: number | undefined;
  /**
   * For the inbound evaluation rules 949110/949111 only: the anomaly threshold the score was
   * compared with, read from `details.match` ("… with parameter `5' against variable
   * `TX:ANOMALY_SCORE'"); undefined otherwise or when it cannot be read.
   */
  threshold: number | undefined;
}

/**
 * The firewall's rule-engine mode as the record states it: ModSecurity
 * `producer.secrules_engine` (`Enabled`, `DetectionOnly`, `Disabled`), Coraza
 * `producer.rule_engine` (`On`, `DetectionOnly`, `Off`).
 */
export type EngineMode = "on" | "detection-only" | "off";

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
  /** The rule-engine mode; undefined when the record does not say (or says something else). */
  engineMode: EngineMode | undefined;
  /** Coraza's `transaction.is_interrupted`; undefined when absent or not a boolean. */
  interrupted: boolean | undefined;
}

/** What normalisation returns: the event, or why the record is invalid (never thrown). */
export type NormaliseResult = { ok: true; event: WafEvent } | { ok: false; reason: string };
