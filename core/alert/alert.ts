/**
 * The alert object (reference §4): what the scorer sends the alert function for each critical,
 * non-allowlisted event, and what lands in the Redis list.
 */
import type { WafEvent } from "../event/types.ts";
import { eventUnixSeconds } from "../metrics/point.ts";
import { maskIp, type PrivacyConfig, redactUri } from "../privacy/privacy.ts";
import type { Score, SeverityLevel } from "../scoring/score.ts";
import type { CampaignAlert } from "./campaign.ts";
import { boundId, boundText } from "./text.ts";

/** `event`: one critical transaction; `campaign`: one client's window (core/alert/campaign.ts). */
export type AlertKind = "event" | "campaign";

export interface Alert {
  /**
   * What the alert is about. Always set by this code; absent only on alerts listed before
   * kinds existed (read those as `event`).
   */
  kind?: AlertKind;
  /** Unix seconds of the event (its own time, else its stream entry's). */
  timestamp: number;
  severity: number;
  severity_level: SeverityLevel;
  client_ip: string;
  rule_id: string;
  categories: string[];
  uri: string;
  method: string;
  tx_id: string;
  anomaly_score: number;
}

/**
 * Bounds on what an alert carries from the request, in UTF-8 bytes of each string's JSON form
 * (issue 12): with them one alert's JSON stays under {@link MAX_ALERT_BYTES}, so a batch of
 * them packs well under Lambda's 256 KB `Event` limit and list entries stay small.
 */
export const ALERT_LIMITS = {
  uri: 2048,
  method: 32,
  ruleId: 128,
  clientIp: 128,
  category: 32,
  /** How many categories (CRS has about twenty). */
  categories: 32,
  /** Cut with a hash of the whole kept, so two tx_ids never become one. */
  txId: 1024,
  /** How many top rules a campaign alert lists. */
  topRules: 10,
} as const;

/** What one alert's JSON can take at most, every field at its bound (the list adds `listed_at`). */
export const MAX_ALERT_BYTES = 8 * 1024;

/**
 * The alert with every field a request can write made well-formed UTF-16 and bounded
 * ({@link ALERT_LIMITS}); a campaign alert keeps its figures. Unknown fields are dropped.
 * Idempotent: the scorer bounds what it sends, the alert function bounds what it receives.
 */
export function boundAlert<A extends Alert>(a: A): A {
  const out: Alert = {
    ...(a.kind !== undefined ? { kind: a.kind } : {}),
    timestamp: a.timestamp,
    severity: a.severity,
    severity_level: a.severity_level,
    client_ip: boundText(a.client_ip, ALERT_LIMITS.clientIp),
    rule_id: boundText(a.rule_id, ALERT_LIMITS.ruleId),
    categories: a.categories
      .slice(0, ALERT_LIMITS.categories)
      .map((c) => boundText(c, ALERT_LIMITS.category)),
    uri: boundText(a.uri, ALERT_LIMITS.uri),
    method: boundText(a.method, ALERT_LIMITS.method),
    tx_id: boundId(a.tx_id, ALERT_LIMITS.txId),
    anomaly_score: a.anomaly_score,
  };
  if (a.kind === "campaign") {
    const c = a as unknown as CampaignAlert;
    Object.assign(out, {
      window_start: c.window_start,
      window_seconds: c.window_seconds,
      events: c.events,
      blocked: c.blocked,
      top_rules: c.top_rules.slice(0, ALERT_LIMITS.topRules).map((r) => ({
        rule_id: boundText(r.rule_id, ALERT_LIMITS.ruleId),
        events: r.events,
      })),
    });
  }
  return out as A;
}

/** The alert for a scored event; callers send it only when `score.alert` is true. */
export function toAlert(
  event: WafEvent,
  score: Score,
  streamId: string | undefined,
  privacy: PrivacyConfig,
): Alert {
  return boundAlert({
    kind: "event",
    timestamp: eventUnixSeconds(event, streamId),
    severity: score.severity,
    severity_level: score.level,
    client_ip: maskIp(event.clientIp, privacy),
    rule_id: score.ruleId,
    categories: score.categories,
    uri: redactUri(event.uri),
    method: event.method ?? "",
    tx_id: event.txId,
    anomaly_score: score.anomalyScore,
  });
}
