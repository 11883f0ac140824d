/**
 * Campaign alerts (reference §3 "Campaigns", issue 14 part 2): one request is rarely the story; a
 * client that keeps getting blocked is. Per client and processing-time window, one critical
 * alert of `kind: "campaign"` as soon as the client reaches `CAMPAIGN_MIN_EVENTS` valid events,
 * or events in ≥ 3 attack categories (930–944), each transaction counted once.
 * `CAMPAIGN_MIN_EVENTS=0` turns both triggers off.
 *
 * This file is the rule and the alert's shape, pure: what one scored event contributes
 * ({@link campaignEventOf}), the client key and window ({@link campaignClientKey},
 * {@link windowStartOf}), the state update and trigger ({@link applyCampaignEvents}, which
 * core/alert/campaign-store.ts performs atomically in Redis with the same semantics), and the
 * alert ({@link toCampaignAlert}).
 */

import { formatIp, parseIp, truncateIp } from "../event/ip.ts";
import type { WafEvent } from "../event/types.ts";
import { maskIp, type PrivacyConfig } from "../privacy/privacy.ts";
import { categoryName, isEvaluationRule } from "../scoring/categories.ts";
import type { Score } from "../scoring/score.ts";
import type { Alert } from "./alert.ts";

export interface CampaignSettings {
  /** `CAMPAIGN_WINDOW_S`: the window's length in seconds. */
  windowSeconds: number;
  /** `CAMPAIGN_MIN_EVENTS`: valid events that raise a campaign alert; 0 turns campaigns off. */
  minEvents: number;
}

/** Distinct attack categories (930–944) in one window that raise a campaign alert. */
export const CAMPAIGN_MIN_CATEGORIES = 3;
/** Categories of one event, and of one campaign, that are kept (CRS has about twenty). */
export const MAX_CAMPAIGN_CATEGORIES = 32;
/** Rules of one event that count toward the window's top rules. */
export const MAX_EVENT_RULES = 32;
/** Distinct rules one window keeps counts for (later new rules are not counted). */
export const MAX_CAMPAIGN_RULES = 64;
/** Rules the alert lists. */
export const TOP_RULES = 5;

/** What one scored event contributes to its client's window. */
export interface CampaignEvent {
  txId: string;
  /** The address as the record wrote it (masked later, like every alert's). */
  clientIp: string;
  severity: number;
  anomalyScore: number;
  /** The firewall blocked it (false when passed or unknown). */
  blocked: boolean;
  /** Category prefixes of its rules, in order, at most {@link MAX_CAMPAIGN_CATEGORIES}. */
  categories: string[];
  /**
   * Its distinct numeric rule IDs (1–10 digits), evaluation rules (949/959/980) excluded, at
   * most {@link MAX_EVENT_RULES}.
   */
  rules: string[];
}

/** Whether campaigns are on at all (`CAMPAIGN_MIN_EVENTS` > 0). */
export function campaignsEnabled(settings: CampaignSettings): boolean {
  return settings.minEvents > 0;
}

/** An attack category: a CRS application-attack file, 930–944. */
export function isAttackCategory(prefix: string): boolean {
  if (!/^\d{3}$/.test(prefix)) return false;
  const n = Number(prefix);
  return n >= 930 && n <= 944;
}

/**
 * What a scored event contributes, or undefined when it does not count: an allowlisted client
 * never alerts, campaigns included.
 */
export function campaignEventOf(event: WafEvent, score: Score): CampaignEvent | undefined {
  if (score.allowlisted) return undefined;
  const rules: string[] = [];
  for (const m of event.messages) {
    if (rules.length >= MAX_EVENT_RULES) break;
    const id = m.ruleId;
    if (id === undefined || !/^\d{1,10}$/.test(id) || isEvaluationRule(id) || rules.includes(id)) {
      continue;
    }
    rules.push(id);
  }
  return {
    txId: event.txId,
    clientIp: event.clientIp,
    severity: score.severity,
    anomalyScore: score.anomalyScore,
    blocked: score.blocked === true,
    categories: score.categoryPrefixes.slice(0, MAX_CAMPAIGN_CATEGORIES),
    rules,
  };
}

/**
 * The canonical client of an address, as every alert-side key names it (campaign windows,
 * notification throttle): an IPv4-mapped IPv6 address is its IPv4 address; an IPv6 address
 * stands for its /64 network, written `2001:db8:1:2::/64` (one host usually gets a whole /64,
 * so counting addresses would let one attacker be 2^64 clients). Undefined for a string that
 * is not an address (e.g. an `IP_MASKING=hash` value).
 * @example canonicalClient("::ffff:203.0.113.9") // "203.0.113.9"
 * @example canonicalClient("2001:db8:1:2:aaaa::1") // "2001:db8:1:2::/64"
 */
export function canonicalClient(clientIp: string): string | undefined {
  const ip = parseIp(clientIp);
  if (!ip) return undefined;
  return ip.version === 4 ? formatIp(ip) : `${formatIp(truncateIp(ip, 64))}/64`;
}

/**
 * The client a campaign is counted for, as used in keys and in the campaign's `tx_id`: the
 * {@link canonicalClient}, masked by `IP_MASKING` like every stored IP (`truncate`: the /24 or
 * /48 network's address, so its clients count together; `hash`: the keyed hash of the
 * canonical address). Undefined for a string that is not an address.
 * @example campaignClientKey("::ffff:203.0.113.9", { ipMasking: "off", ipHashKey: undefined }) // "203.0.113.9"
 */
export function campaignClientKey(clientIp: string, privacy: PrivacyConfig): string | undefined {
  const canonical = canonicalClient(clientIp);
  if (canonical === undefined || privacy.ipMasking === "off") return canonical;
  return maskIp(canonical.replace(/\/64$/, ""), privacy);
}

/**
 * The start (unix seconds) of the window holding `nowMs`: floor(now / CAMPAIGN_WINDOW_S) ×
 * CAMPAIGN_WINDOW_S. "Now" is processing time, never the event's own time (old events replayed
 * count when they arrive).
 */
export function windowStartOf(nowMs: number, windowSeconds: number): number {
  const w = Math.max(1, Math.floor(windowSeconds));
  return Math.floor(Math.floor(nowMs / 1000) / w) * w;
}

/** The campaign alert's `tx_id`: one per client and window, so the alert list keeps one. */
export function campaignTxId(clientKey: string, windowStart: number): string {
  return `campaign:${clientKey}:${windowStart}`;
}

/** One client's window, as {@link applyCampaignEvents} keeps it (and the Redis store mirrors). */
export interface CampaignState {
  /** Transactions counted (until the window fired; after that, only looked up). */
  txIds: Set<string>;
  events: number;
  blocked: number;
  maxSeverity: number;
  maxAnomaly: number;
  /** The first event's address, as written. */
  clientIp: string | undefined;
  /** Category prefixes in order of first appearance. */
  categories: string[];
  attackCategories: number;
  /** Events per rule, for at most {@link MAX_CAMPAIGN_RULES} rules. */
  ruleCounts: Map<string, number>;
  /** The window reached a trigger. */
  fired: boolean;
}

export function emptyCampaignState(): CampaignState {
  return {
    txIds: new Set(),
    events: 0,
    blocked: 0,
    maxSeverity: 0,
    maxAnomaly: 0,
    clientIp: undefined,
    categories: [],
    attackCategories: 0,
    ruleCounts: new Map(),
    fired: false,
  };
}

/** Whether a window's counts meet a trigger. */
export function campaignTriggered(
  state: Pick<CampaignState, "events" | "attackCategories">,
  settings: CampaignSettings,
): boolean {
  return (
    campaignsEnabled(settings) &&
    (state.events >= settings.minEvents || state.attackCategories >= CAMPAIGN_MIN_CATEGORIES)
  );
}

/**
 * Adds one client's events of one window to its state (in place) and says whether to raise
 * the campaign alert now: when this call made the window reach a trigger, or when the window
 * had fired and this call brings a transaction it had already counted — a redelivery, so the
 * earlier attempt may not have queued its alert. The alert list keeps one entry per `tx_id`,
 * so raising it again is harmless; raising it once per window and crash is what matters.
 * A transaction is counted once. After the window fired its counts stay as they were.
 */
export function applyCampaignEvents(
  state: CampaignState,
  events: readonly CampaignEvent[],
  settings: CampaignSettings,
): { raise: boolean } {
  if (!campaignsEnabled(settings)) return { raise: false };
  const firedBefore = state.fired;
  let redelivered = false;
  for (const e of events) {
    if (state.txIds.has(e.txId)) {
      redelivered = true;
      continue;
    }
    if (state.fired) continue;
    state.txIds.add(e.txId);
    state.events++;
    if (e.blocked) state.blocked++;
    // The first event sets the maxima (weights may be negative, so severity may be too).
    state.maxSeverity = state.events === 1 ? e.severity : Math.max(state.maxSeverity, e.severity);
    state.maxAnomaly =
      state.events === 1 ? e.anomalyScore : Math.max(state.maxAnomaly, e.anomalyScore);
    state.clientIp ??= e.clientIp;
    for (const c of e.categories.slice(0, MAX_CAMPAIGN_CATEGORIES)) {
      if (state.categories.includes(c) || state.categories.length >= MAX_CAMPAIGN_CATEGORIES) {
        continue;
      }
      state.categories.push(c);
      if (isAttackCategory(c)) state.attackCategories++;
    }
    for (const r of e.rules.slice(0, MAX_EVENT_RULES)) {
      const n = state.ruleCounts.get(r);
      if (n !== undefined) state.ruleCounts.set(r, n + 1);
      else if (state.ruleCounts.size < MAX_CAMPAIGN_RULES) state.ruleCounts.set(r, 1);
    }
    if (campaignTriggered(state, settings)) state.fired = true;
  }
  return { raise: state.fired && (!firedBefore || redelivered) };
}

/** The campaign alert: an {@link Alert} of `kind: "campaign"` with the window's figures. */
export interface CampaignAlert extends Alert {
  kind: "campaign";
  /** Unix seconds the window started. */
  window_start: number;
  window_seconds: number;
  /** Valid events of the client in the window when it fired. */
  events: number;
  /** How many of them the firewall blocked. */
  blocked: number;
  /** The most frequent rules, most events first (ties: lower ID first). */
  top_rules: Array<{ rule_id: string; events: number }>;
}

/** Whether an alert is a campaign alert (alerts listed before kinds existed are events). */
export function isCampaignAlert(alert: Alert): alert is CampaignAlert {
  return alert.kind === "campaign";
}

/** What {@link toCampaignAlert} needs of a window (the pure state, or the Redis store's reply). */
export type CampaignFigures = Pick<
  CampaignState,
  "events" | "blocked" | "maxSeverity" | "maxAnomaly" | "clientIp" | "categories" | "ruleCounts"
>;

/**
 * The alert for a window that fired. `severity` is the highest severity among the window's
 * events; the level is critical (a campaign is critical by definition); `rule_id` is the top
 * rule (`none` without one); `uri` and `method` are empty; `timestamp` is when it fired.
 * @example
 * toCampaignAlert(state, { clientKey: "203.0.113.9", windowStart: 1700000100, windowSeconds: 300, nowMs }, privacy)
 * // { kind: "campaign", tx_id: "campaign:203.0.113.9:1700000100", events: 20, … }
 */
export function toCampaignAlert(
  figures: CampaignFigures,
  where: { clientKey: string; windowStart: number; windowSeconds: number; nowMs: number },
  privacy: PrivacyConfig,
): CampaignAlert {
  const top = [...figures.ruleCounts.entries()]
    .sort(([a, x], [b, y]) => y - x || a.length - b.length || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, TOP_RULES)
    .map(([rule_id, events]) => ({ rule_id, events }));
  const names: string[] = [];
  for (const p of figures.categories) {
    const name = categoryName(p);
    if (!names.includes(name)) names.push(name);
  }
  return {
    kind: "campaign",
    timestamp: Math.floor(where.nowMs / 1000),
    severity: figures.maxSeverity,
    severity_level: "critical",
    client_ip: figures.clientIp === undefined ? "" : maskIp(figures.clientIp, privacy),
    rule_id: top[0]?.rule_id ?? "none",
    categories: names,
    uri: "",
    method: "",
    tx_id: campaignTxId(where.clientKey, where.windowStart),
    anomaly_score: figures.maxAnomaly,
    window_start: where.windowStart,
    window_seconds: where.windowSeconds,
    events: figures.events,
    blocked: figures.blocked,
    top_rules: top,
  };
}

/**
 * A batch's campaign events grouped by client key and window, in first-seen order: one store
 * call per group. `nowMs` is each event's processing time (see {@link windowStartOf}).
 */
export function groupCampaignEvents(
  items: ReadonlyArray<{ event: CampaignEvent; nowMs: number }>,
  settings: CampaignSettings,
  privacy: PrivacyConfig,
): Array<{ clientKey: string; windowStart: number; events: CampaignEvent[] }> {
  const groups = new Map<
    string,
    { clientKey: string; windowStart: number; events: CampaignEvent[] }
  >();
  if (!campaignsEnabled(settings)) return [];
  for (const { event, nowMs } of items) {
    const clientKey = campaignClientKey(event.clientIp, privacy);
    if (clientKey === undefined) continue;
    const windowStart = windowStartOf(nowMs, settings.windowSeconds);
    const id = `${clientKey} ${windowStart}`;
    let g = groups.get(id);
    if (g === undefined) {
      g = { clientKey, windowStart, events: [] };
      groups.set(id, g);
    }
    g.events.push(event);
  }
  return [...groups.values()];
}
