/**
 * The alert object (reference §4): what the scorer sends the alert function for each critical,
 * non-allowlisted event, and what lands in the Redis list.
 */
import type { WafEvent } from "../event/types.ts";
import { eventUnixSeconds } from "../metrics/point.ts";
import { maskIp, type PrivacyConfig, redactUri } from "../privacy/privacy.ts";
import type { Score, SeverityLevel } from "../scoring/score.ts";

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

/** The alert for a scored event; callers send it only when `score.alert` is true. */
export function toAlert(
  event: WafEvent,
  score: Score,
  streamId: string | undefined,
  privacy: PrivacyConfig,
): Alert {
  return {
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
  };
}
