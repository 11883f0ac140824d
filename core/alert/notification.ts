/**
 * What notification channels send (reference §4): one notification per alert that passed the
 * channel's minimum severity and its throttle, and one summary per throttle window that
 * suppressed alerts. Pure: formatting and throttle arithmetic, no I/O.
 */
import { categoryName, categoryOf } from "../scoring/categories.ts";
import type { Alert } from "./alert.ts";

/** What a throttle window held back: sent as "and 37 more from 203.0.113.9 in 5 min". */
export interface ThrottleSummary {
  clientIp: string;
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

/** Throttle key of an alert: its client IP (as listed, so masked when masking is on) and category. */
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
  return { clientIp: alert.client_ip, category: primaryCategory(alert) };
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
  return `and ${s.suppressed} more from ${s.clientIp} in ${humanDuration(s.windowSeconds)} (${s.category})`;
}

/** ISO 8601 (UTC, seconds) of unix seconds or milliseconds. */
export function isoTime(unix: number, unit: "s" | "ms" = "s"): string {
  const ms = unit === "s" ? unix * 1000 : unix;
  const d = new Date(Number.isFinite(ms) ? ms : 0);
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Title-case label of a level: "critical" → "Critical". */
export function levelLabel(level: string): string {
  return level.charAt(0).toUpperCase() + level.slice(1);
}

/** Cuts text to `max` characters, marking the cut. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** One line, no control characters: attacker-controlled text must not forge lines or headers. */
export function oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ");
}

/** The headline shared by every channel, e.g. "Critical WAF alert: sqli from 203.0.113.9 (severity 95)". */
export function headline(n: Notification): string {
  if (n.kind === "summary") return `WAF alerts throttled: ${summaryText(n.summary)}`;
  const a = n.alert;
  return oneLine(
    `${levelLabel(a.severity_level)} WAF alert: ${primaryCategory(a)} from ${a.client_ip} (severity ${a.severity})`,
  );
}
