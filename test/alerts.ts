/**
 * Alerts for tests: a campaign alert (core/alert/campaign.ts) as the scorer raises one, for the
 * alert side's tests.
 */
import type { CampaignAlert } from "../core/alert/campaign.ts";

/**
 * A campaign alert of 203.0.113.9 for the window starting at `windowStart`: 20 events, 18 blocked,
 * SQLi and XSS, severity 30 (the highest of its events).
 */
export function campaignAlert(
  windowStart = 1_700_000_100,
  extra: Partial<CampaignAlert> = {},
): CampaignAlert {
  const client = extra.client_ip ?? "203.0.113.9";
  return {
    kind: "campaign",
    timestamp: windowStart + 60,
    severity: 30,
    severity_level: "critical",
    client_ip: client,
    rule_id: "942100",
    categories: ["sqli", "xss"],
    uri: "",
    method: "",
    tx_id: `campaign:${client}:${windowStart}`,
    anomaly_score: 5,
    window_start: windowStart,
    window_seconds: 300,
    events: 20,
    blocked: 18,
    top_rules: [
      { rule_id: "942100", events: 15 },
      { rule_id: "941100", events: 5 },
    ],
    ...extra,
  };
}
