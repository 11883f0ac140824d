/**
 * What notification channels send (reference §4): one notification per alert that passed the
 * channel's minimum severity and its throttle, and one summary per throttle window that
 * suppressed alerts. Pure: formatting and throttle arithmetic, no I/O.
 */
import { categoryName, categoryOf } from "../scoring/categories.ts";
import type { Alert } from "./alert.ts";
import { canonicalClient, isCampaignAlert } from "./campaign.ts";
import { oneLine } from "./text.ts";

/** What a throttle window held back: sent as "and 37 more from 203.0.113.9 in 5 min". */
export interface ThrottleSummary {
  /**
   * The canonical client the window counted (an address, an IPv6 /64, a masked value), or
   * {@link ANY_CLIENT} for what the channel's rate cap held back.
   */
  clientIp: string;
  /** The window's category; `campaign` for campaign alerts; {@link ANY_CLIENT} for the rate cap. */
  category: string;
  /** Alerts counted in the window but not sent. */
  suppressed: number;
  /** Unix milliseconds (Redis server time) when the window opened. */
  windowStart: number;
  windowSeconds: number;
  /** tx_id of the window's first alert, the one that was sent. */
  firstTxId: string;
}

export type Notification =
  | {
      kind: "alert";
      /** Stable across retries and redeliveries: the alert's tx_id. */
      id: string;
      alert: Alert;
      /** The previous window of the same (client IP, category), when it suppressed alerts. */
      previous?: ThrottleSummary;
    }
  | { kind: "summary"; id: string; summary: ThrottleSummary };

/** `clientIp` and `category` of the summary of what a channel's rate cap held back. */
export const ANY_CLIENT = "*";

/** The category campaign alerts are throttled under: never shared with event alerts. */
export const CAMPAIGN_CATEGORY = "campaign";

/**
 * Throttle key of an alert (issue 12 row 9): its canonical client (core/alert/campaign.ts, the
 * same function campaign windows use: an IPv4-mapped address as IPv4, IPv6 per /64; a value
 * that is no address, such as a hashed IP, as it is) and its category. Used only in keys and
 * summaries: the alert's own `client_ip` stays as the record wrote it.
 */
export interface ThrottleKey {
  clientIp: string;
  category: string;
}

/**
 * The category an alert is throttled and headlined under: the category of its reported rule
 * (the heaviest one, reference §3), else its first category, else "none".
 * @example primaryCategory({ rule_id: "942100", categories: ["protocol", "sqli"] }) // "sqli"
 */
export function primaryCategory(alert: Pick<Alert, "rule_id" | "categories">): string {
  const prefix = categoryOf(alert.rule_id);
  return prefix ? categoryName(prefix) : (alert.categories[0] ?? "none");
}

export function throttleKeyOf(alert: Alert): ThrottleKey {
  const clientIp = canonicalClient(alert.client_ip) ?? alert.client_ip;
  if (isCampaignAlert(alert)) return { clientIp, category: CAMPAIGN_CATEGORY };
  const category = primaryCategory(alert);
  // An event is never throttled together with a campaign, whatever its categories say.
  return { clientIp, category: category === CAMPAIGN_CATEGORY ? "other" : category };
}

/**
 * The severity a channel's minimum is compared with: the alert's, except that a campaign is
 * critical by definition (its `severity` is the highest of its window's events, which may be
 * low), so it counts as at least the critical threshold.
 */
export function effectiveSeverity(alert: Alert, criticalThreshold: number): number {
  return isCampaignAlert(alert) ? Math.max(alert.severity, criticalThreshold) : alert.severity;
}

export function alertNotification(alert: Alert, previous?: ThrottleSummary): Notification {
  return previous
    ? { kind: "alert", id: alert.tx_id, alert, previous }
    : { kind: "alert", id: alert.tx_id, alert };
}

export function summaryNotification(summary: ThrottleSummary): Notification {
  return {
    kind: "summary",
    id: `summary:${summary.category}:${summary.clientIp}:${summary.windowStart}`,
    summary,
  };
}

/**
 * A window length in words.
 * @example humanDuration(300) // "5 min";  humanDuration(45) // "45 s";  humanDuration(7200) // "2 h"
 */
export function humanDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/**
 * The one-line summary of a throttle window.
 * @example summaryText({ suppressed: 37, clientIp: "203.0.113.9", category: "sqli", windowSeconds: 300, … })
 * // "and 37 more from 203.0.113.9 in 5 min (sqli)"
 */
export function summaryText(s: ThrottleSummary): string {
  const within = humanDuration(s.windowSeconds);
  if (s.clientIp === ANY_CLIENT) {
    return `and ${s.suppressed} more held back by the channel's rate cap in ${within}`;
  }
  return oneLine(`and ${s.suppressed} more from ${s.clientIp} in ${within} (${s.category})`);
}

/** ISO 8601 (UTC, seconds) of unix seconds or milliseconds. */
export function isoTime(unix: number, unit: "s" | "ms" = "s"): string {
  const ms = unit === "s" ? unix * 1000 : unix;
  const d = new Date(Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? ms : 0);
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Title-case label of a level: "critical" → "Critical". */
export function levelLabel(level: string): string {
  return level.charAt(0).toUpperCase() + level.slice(1);
}

/**
 * The headline shared by every channel, e.g. "Critical WAF alert: sqli from 203.0.113.9
 * (severity 95)", or for a campaign "Critical WAF campaign: 25 events (20 blocked) from
 * 203.0.113.9 in 5 min". One line; not yet bounded or escaped for any sink.
 */
export function headline(n: Notification): string {
  if (n.kind === "summary") return `WAF alerts throttled: ${summaryText(n.summary)}`;
  const a = n.alert;
  if (isCampaignAlert(a)) {
    return oneLine(
      `Critical WAF campaign: ${a.events} events (${a.blocked} blocked) from ${a.client_ip} in ${humanDuration(a.window_seconds)}`,
    );
  }
  return oneLine(
    `${levelLabel(a.severity_level)} WAF alert: ${primaryCategory(a)} from ${a.client_ip} (severity ${a.severity})`,
  );
}
