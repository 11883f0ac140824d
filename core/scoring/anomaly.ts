/**
 * Anomaly score reconstruction (reference §3), in this order:
 * 1. `transaction.anomaly_score` when the key is present (0 is a value);
 * 2. the N of the first 949110/949111 message whose text (`message`, else the rule's `msg`)
 *    contains `Total Score: N`;
 * 3. the CRS sum over messages with rule IDs 911000–948999 (repeats count again).
 */
import { MAX_ANOMALY_SCORE } from "../event/fields.ts";
import type { RuleMatch, WafEvent } from "../event/types.ts";

/** CRS severity (syslog scale) → anomaly points: critical 5, error 4, warning 3, notice 2. */
const POINTS: Readonly<Record<number, number>> = { 2: 5, 3: 4, 4: 3, 5: 2 };

/** Points for a severity given as an integer or a digit string; anything else is 0. */
export function severityPoints(severity: unknown): number {
  let n: number | undefined;
  if (typeof severity === "number" && Number.isInteger(severity)) n = severity;
  else if (typeof severity === "string" && /^\s*\d+\s*$/.test(severity)) n = Number(severity);
  return n === undefined ? 0 : (POINTS[n] ?? 0);
}

const TOTAL_SCORE = /Total Score: (\d+)/;

function totalScoreOf(m: RuleMatch): number | undefined {
  if (m.ruleId !== "949110" && m.ruleId !== "949111") return undefined;
  for (const text of [m.message, m.msg]) {
    if (typeof text !== "string") continue;
    const match = TOTAL_SCORE.exec(text);
    // A total beyond what a record may state (10^15) is not a score; it does not count.
    if (match && Number(match[1]) <= MAX_ANOMALY_SCORE) return Number(match[1]);
  }
  return undefined;
}

function isInboundDetection(ruleId: string | undefined): boolean {
  if (ruleId === undefined || !/^\d{6}$/.test(ruleId)) return false;
  const n = Number(ruleId);
  return n >= 911000 && n <= 948999;
}

/** The event's anomaly score by the reference §3 order. */
export function anomalyScore(event: Pick<WafEvent, "anomalyScore" | "messages">): number {
  if (event.anomalyScore !== undefined) return event.anomalyScore;
  for (const m of event.messages) {
    const total = totalScoreOf(m);
    if (total !== undefined) return total;
  }
  let sum = 0;
  for (const m of event.messages) {
    if (isInboundDetection(m.ruleId)) sum += severityPoints(m.severity);
  }
  return sum;
}
