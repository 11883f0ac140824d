/**
 * The `crs` scoring profile (reference §3 "Profiles", issue 14): the severity follows what a real
 * CRS record says happened rather than the raw anomaly score. Data (the table below) plus one
 * small pure function; docs/detection.md explains it and shows the levels it gives.
 *
 * With S the anomaly score (shared with the seed profile) and T the inbound threshold the
 * record states (default 5), each situation has a severity at S = T, points per further
 * threshold and a ceiling:
 *
 * | situation                                   | S = T | + per T above | ceiling |
 * | ------------------------------------------- | ----- | ------------- | ------- |
 * | blocked, application-attack rule (930–944)  | 30    | 10            | 70      |
 * | blocked, other rules                        | 20    | 5             | 45      |
 * | reached the application, application attack | 60    | 20            | 100     |
 * | reached the application, other rules        | 40    | 10            | 70      |
 *
 * Below the threshold the severity rises linearly from 0 to the situation's value at S = T.
 * "Reached the application" is every record not known to be blocked (DetectionOnly, below the
 * threshold, or unknown). A passed attack becomes critical only when the paranoia-level-1 part
 * of its score also reaches 2 × T (S × the PL1 share of the logged rule points, rules without a
 * level counting as PL1): higher paranoia levels add the false-positive-prone rules, and alone
 * they make it high at most. At paranoia level 1 that part is the whole score. Any outbound
 * leakage rule (950–956) lifts the severity to at least 90. The caller adds the reputation
 * bonus and cuts levels with `SEVERITY_THRESHOLDS` (80/60/40), as for seed.
 */
import type { CrsFacts } from "./facts.ts";

export interface CrsSituation {
  /** Severity when the score equals the threshold. */
  atThreshold: number;
  /** Points for each further threshold's worth of score (prorated, rounded down). */
  perThreshold: number;
  /** The highest severity of the situation (before reputation). */
  max: number;
}

export interface CrsProfile {
  blocked: { attack: CrsSituation; other: CrsSituation };
  passed: { attack: CrsSituation; other: CrsSituation };
  /**
   * Ceiling (just below critical) of a passed attack whose paranoia-level-1 part of the score
   * stays under {@link CrsProfile.criticalThresholds} × T.
   */
  higherParanoiaMax: number;
  /** The multiple of the threshold the paranoia-level-1 part must reach for critical. */
  criticalThresholds: number;
  /** Floor of any record where an outbound leakage rule fired. */
  leakage: number;
}

/** The profile's table (default `SEVERITY_THRESHOLDS` 80/60/40 in mind). */
export const CRS_PROFILE: Readonly<CrsProfile> = Object.freeze({
  blocked: {
    attack: { atThreshold: 30, perThreshold: 10, max: 70 },
    other: { atThreshold: 20, perThreshold: 5, max: 45 },
  },
  passed: {
    attack: { atThreshold: 60, perThreshold: 20, max: 100 },
    other: { atThreshold: 40, perThreshold: 10, max: 70 },
  },
  higherParanoiaMax: 79,
  criticalThresholds: 2,
  leakage: 90,
});

/** A score this many thresholds high is already at every ceiling; keeps the arithmetic exact. */
const MAX_RATIO = 1000;

/**
 * The `crs` severity of an event before the reputation bonus: an integer, non-decreasing in
 * the anomaly score for fixed facts.
 * @example
 * // A blocked SQL injection scoring 10 against the default threshold 5: 30 + 10 = 40 (medium).
 * crsSeverity(10, { blocked: true, threshold: 5, applicationAttack: true, … }) // 40
 */
export function crsSeverity(
  anomaly: number,
  facts: CrsFacts,
  profile: Readonly<CrsProfile> = CRS_PROFILE,
): number {
  const mode = facts.blocked === true ? profile.blocked : profile.passed;
  const s = facts.applicationAttack ? mode.attack : mode.other;
  const t = facts.threshold;
  const score = Math.min(Math.max(anomaly, 0), t * MAX_RATIO);
  let severity =
    score < t
      ? Math.floor((s.atThreshold * score) / t)
      : Math.min(s.max, s.atThreshold + Math.floor((s.perThreshold * (score - t)) / t));
  // score × pl1Points / inboundPoints < k × t, without division (nothing logged: share 1).
  if (
    facts.blocked !== true &&
    facts.applicationAttack &&
    facts.inboundPoints > 0 &&
    score * facts.pl1Points < profile.criticalThresholds * t * facts.inboundPoints
  ) {
    severity = Math.min(severity, profile.higherParanoiaMax);
  }
  if (facts.leakage) severity = Math.max(severity, profile.leakage);
  return severity;
}
