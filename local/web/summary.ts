/**
 * What the live view shows about the alerts, computed from the alert list alone (so it works
 * against any Redis, production included, with nothing else configured): the severity
 * distribution and the top attacking IPs and rules over a window (the last hour by default),
 * by the time each alert was listed.
 */
import { categoryName, categoryOf } from "../../core/scoring/categories.ts";

/** A listed alert as read back from Redis; any field may be missing or of the wrong type. */
export interface ListedAlertLike {
  timestamp?: unknown;
  severity?: unknown;
  severity_level?: unknown;
  client_ip?: unknown;
  rule_id?: unknown;
  categories?: unknown;
  uri?: unknown;
  method?: unknown;
  tx_id?: unknown;
  anomaly_score?: unknown;
  listed_at?: unknown;
}

export interface Ranked {
  key: string;
  count: number;
  /** Highest severity seen for this key. */
  maxSeverity: number;
  /** IPs: the categories of their alerts; rules: the rule's own category. */
  categories: string[];
}

export interface WindowSummary {
  windowSeconds: number;
  /** Alerts listed inside the window. */
  alerts: number;
  byLevel: Record<string, number>;
  /** Severity histogram: fixed buckets, all present (zeros included), low to high. */
  bySeverity: Array<{ label: string; min: number; count: number }>;
  topIps: Ranked[];
  topRules: Ranked[];
}

/** Lower bounds of the severity buckets: critical starts at 80 with the default thresholds. */
export const SEVERITY_BUCKETS = [0, 40, 60, 80, 90, 100, 120] as const;

function bucketLabel(i: number): string {
  const min = SEVERITY_BUCKETS[i] as number;
  const next = SEVERITY_BUCKETS[i + 1];
  return next === undefined ? `${min}+` : `${min}–${next - 1}`;
}

/** Strings and numbers as text; anything else (objects from a tampered list) as nothing. */
const text = (v: unknown): string =>
  typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : "";

function rank(map: Map<string, Ranked>, top: number): Ranked[] {
  return [...map.values()]
    .sort((a, b) => b.count - a.count || b.maxSeverity - a.maxSeverity || (a.key < b.key ? -1 : 1))
    .slice(0, top);
}

/**
 * Summarises the alerts listed at or after `nowSeconds - windowSeconds`.
 *
 * @example
 * summarise(alerts, Math.floor(Date.now() / 1000), 3600, 10).topIps[0] // { key: "203.0.113.9", count: 12, … }
 */
export function summarise(
  alerts: readonly ListedAlertLike[],
  nowSeconds: number,
  windowSeconds = 3600,
  top = 10,
): WindowSummary {
  const from = nowSeconds - windowSeconds;
  const byLevel: Record<string, number> = { critical: 0, high: 0, medium: 0, low: 0 };
  const buckets = SEVERITY_BUCKETS.map((min, i) => ({ label: bucketLabel(i), min, count: 0 }));
  const ips = new Map<string, Ranked>();
  const rules = new Map<string, Ranked>();
  let n = 0;
  for (const a of alerts) {
    const at = Number(a.listed_at ?? a.timestamp);
    if (!Number.isFinite(at) || at < from) continue;
    n++;
    const level = text(a.severity_level).toLowerCase() || "unknown";
    byLevel[level] = (byLevel[level] ?? 0) + 1;
    const severity = Number(a.severity);
    if (Number.isFinite(severity)) {
      let b = 0;
      for (let i = 0; i < SEVERITY_BUCKETS.length; i++)
        if (severity >= (SEVERITY_BUCKETS[i] as number)) b = i;
      (buckets[b] as { count: number }).count++;
    }
    const categories = Array.isArray(a.categories) ? a.categories.map(text) : [];
    const add = (map: Map<string, Ranked>, key: string, cats: string[]) => {
      const r = map.get(key) ?? { key, count: 0, maxSeverity: 0, categories: [] };
      r.count++;
      if (Number.isFinite(severity) && severity > r.maxSeverity) r.maxSeverity = severity;
      for (const c of cats) if (!r.categories.includes(c)) r.categories.push(c);
      map.set(key, r);
    };
    add(ips, text(a.client_ip) || "unknown", categories);
    const rule = text(a.rule_id) || "none";
    const prefix = categoryOf(rule);
    add(rules, rule, prefix === undefined ? [] : [categoryName(prefix)]);
  }
  return {
    windowSeconds,
    alerts: n,
    byLevel,
    bySeverity: buckets,
    topIps: rank(ips, top),
    topRules: rank(rules, top),
  };
}
