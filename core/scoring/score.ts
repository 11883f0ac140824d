/**
 * Severity (reference §3). The `seed` profile: anomaly score + category weights (once per distinct
 * category) + reputation bonus, not capped. The `crs` profile: what the record says happened
 * (core/scoring/crs.ts) + the same reputation bonus. Both: level by thresholds, the reported
 * `rule_id`, whether to alert.
 */
import type { WafEvent } from "../event/types.ts";
import { anomalyScore } from "./anomaly.ts";
import { categoryName, categoryOf, DEFAULT_WEIGHTS, isEvaluationRule } from "./categories.ts";
import { crsSeverity } from "./crs.ts";
import { blockedOf, crsFacts } from "./facts.ts";
import type { Reputation } from "./reputation.ts";

export type SeverityLevel = "critical" | "high" | "medium" | "low";

/** The scoring profiles (`SCORING_PROFILE`). */
export const PROFILES = ["seed", "crs"] as const;
export type ProfileName = (typeof PROFILES)[number];

export interface ScoringConfig {
  /** Points per category prefix (`SCORING_WEIGHTS`); prefixes not listed weigh 0. */
  weights: Readonly<Record<string, number>>;
  /** Lower bounds of critical, high, medium (`SEVERITY_THRESHOLDS`, default 80,60,40). */
  thresholds: { critical: number; high: number; medium: number };
  /** Points added for a known-malicious client IP (reference §3: +15). */
  reputationPoints: number;
  /** `SCORING_PROFILE`; absent means `seed`. */
  profile?: ProfileName;
}

export const DEFAULT_SCORING: ScoringConfig = {
  weights: DEFAULT_WEIGHTS,
  thresholds: { critical: 80, high: 60, medium: 40 },
  reputationPoints: 15,
  profile: "seed",
};

export interface Score {
  anomalyScore: number;
  severity: number;
  level: SeverityLevel;
  ruleId: string;
  /** Distinct category prefixes in order of first appearance. */
  categoryPrefixes: string[];
  /** Short names of those categories, deduplicated ("protocol" once for 920 and 921). */
  categories: string[];
  malicious: boolean;
  allowlisted: boolean;
  /** Critical and not allowlisted. */
  alert: boolean;
  /** The profile that computed severity and level. */
  profile: ProfileName;
  /** Whether the firewall blocked the transaction; null when the record does not say. */
  blocked: boolean | null;
}

export function levelOf(severity: number, t: ScoringConfig["thresholds"]): SeverityLevel {
  if (severity >= t.critical) return "critical";
  if (severity >= t.high) return "high";
  if (severity >= t.medium) return "medium";
  return "low";
}

function weightOf(prefix: string | undefined, weights: ScoringConfig["weights"]): number {
  if (prefix === undefined || !Object.hasOwn(weights, prefix)) return 0;
  return weights[prefix] ?? 0;
}

/**
 * Scores a normalised event.
 * @example
 * // The reference §3 worked example: envelope with rule 942100, anomaly 65, IP not malicious.
 * scoreEvent(event, DEFAULT_SCORING, Reputation.fromLists({})).severity // 95, "critical"
 */
export function scoreEvent(event: WafEvent, config: ScoringConfig, reputation: Reputation): Score {
  const anomaly = anomalyScore(event);

  const prefixes: string[] = [];
  const addPrefix = (id: string | undefined) => {
    if (id === undefined) return;
    const p = categoryOf(id);
    if (p !== undefined && !prefixes.includes(p)) prefixes.push(p);
  };
  for (const m of event.messages) addPrefix(m.ruleId);
  addPrefix(event.classificationRuleId);

  const profile = config.profile ?? "seed";
  let base: number;
  let blocked: boolean | null;
  if (profile === "crs") {
    const facts = crsFacts(event);
    base = crsSeverity(anomaly, facts);
    blocked = facts.blocked;
  } else {
    let weightSum = 0;
    for (const p of prefixes) weightSum += weightOf(p, config.weights);
    base = anomaly + weightSum;
    blocked = blockedOf(event);
  }

  const verdict = reputation.verdict(event.clientIp);
  const bonus = verdict.malicious && !verdict.allowlisted ? config.reputationPoints : 0;
  const severity = base + bonus;
  const level = levelOf(severity, config.thresholds);

  let ruleId = event.classificationRuleId;
  if (ruleId === undefined) {
    let best: { id: string; weight: number } | undefined;
    for (const m of event.messages) {
      if (m.ruleId === undefined || isEvaluationRule(m.ruleId)) continue;
      const w = weightOf(categoryOf(m.ruleId), config.weights);
      if (best === undefined || w > best.weight) best = { id: m.ruleId, weight: w };
    }
    ruleId = best?.id ?? "none";
  }

  const categories: string[] = [];
  for (const p of prefixes) {
    const name = categoryName(p);
    if (!categories.includes(name)) categories.push(name);
  }

  return {
    anomalyScore: anomaly,
    severity,
    level,
    ruleId,
    categoryPrefixes: prefixes,
    categories,
    malicious: verdict.malicious,
    allowlisted: verdict.allowlisted,
    alert: level === "critical" && !verdict.allowlisted,
    profile,
    blocked,
  };
}
