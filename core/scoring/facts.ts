/**
 * What a real CRS record says happened (reference §3 "Profiles"): was the request blocked, the
 * inbound threshold its score was compared with, whether application-attack rules (930–944)
 * or outbound leakage rules (950–956) fired, and the paranoia levels of the rules that matched.
 * Read from the normalised event only; pure.
 */
import type { WafEvent } from "../event/types.ts";
import { severityPoints } from "./anomaly.ts";

/** CRS's default inbound anomaly threshold (REQUEST-901), used when the record states none. */
export const DEFAULT_INBOUND_THRESHOLD = 5;

/**
 * Rules whose presence means the engine denied the transaction when it was enforcing: the CRS
 * inbound and outbound evaluations, and the request-body checks of ModSecurity's recommended
 * configuration (200002 body parsing failed, 200003 multipart strict, 200004 unmatched boundary).
 */
const DENYING_RULES: ReadonlySet<string> = new Set([
  "949110",
  "949111",
  "959100",
  "959101",
  "200002",
  "200003",
  "200004",
]);

export interface CrsFacts {
  /**
   * Whether the firewall stopped the transaction (the client got a denial, not the
   * application's answer): true, false, or null when the record does not say.
   */
  blocked: boolean | null;
  /** The inbound threshold from 949110/949111's `details.match`, else {@link DEFAULT_INBOUND_THRESHOLD}. */
  threshold: number;
  /** Whether the record stated the threshold. */
  thresholdStated: boolean;
  /** A rule 930000–944999 (LFI, RFI, RCE, PHP, generic, XSS, SQLi, session fixation, Java) fired. */
  applicationAttack: boolean;
  /**
   * The logged points (by severity: critical 5, error 4, warning 3, notice 2) of the inbound
   * detection rules 911000–948999 that matched, and of those among them tagged paranoia level 1
   * or with no level (unknown counts as 1). Not a score — a rule matching several variables
   * scores once per match but is logged once — only the share of the score that paranoia
   * level 1 accounts for: `score × pl1Points / inboundPoints`.
   */
  inboundPoints: number;
  pl1Points: number;
  /** An outbound data-leakage rule 950000–956999 fired: the response leaked. */
  leakage: boolean;
  /** The highest `paranoia-level/N` among the rules that matched; undefined when none says. */
  paranoiaLevel: number | undefined;
}

/** The six-digit rule number, or -1 when the ID is not exactly six digits. */
export function ruleNumber(id: string | undefined): number {
  if (id === undefined || id.length !== 6) return -1;
  for (let i = 0; i < 6; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
  }
  return Number(id);
}

export function isApplicationAttackRule(n: number): boolean {
  return n >= 930000 && n <= 944999;
}

export function isLeakageRule(n: number): boolean {
  return n >= 950000 && n <= 956999;
}

/**
 * Whether the firewall blocked the transaction, from what the record states:
 * 1. Coraza's `is_interrupted` when present;
 * 2. not blocked when the engine only detects (`DetectionOnly`) or is off;
 * 3. not blocked when the response is 2xx: the application answered;
 * 4. an enforcing engine (`Enabled`/`On`): blocked when a denying rule fired (CRS evaluation
 *    949110/949111/959100/959101, ModSecurity's 200002–200004) or when it answered 403 after
 *    a rule matched; a 1xx/3xx without a denying rule is the application's; otherwise unknown;
 * 5. engine mode unknown (the envelope, old producers): blocked when a denying rule fired and
 *    the status is an error (≥ 400); not blocked for 1xx/3xx; otherwise unknown.
 */
export function blockedOf(
  event: Pick<WafEvent, "interrupted" | "engineMode" | "responseCode" | "messages">,
): boolean | null {
  if (event.interrupted !== undefined) return event.interrupted;
  const mode = event.engineMode;
  if (mode === "detection-only" || mode === "off") return false;
  const code = event.responseCode;
  if (code !== undefined && code >= 200 && code < 300) return false;
  let denied = false;
  let anyRule = false;
  for (const m of event.messages) {
    if (m.ruleId === undefined) continue;
    anyRule = true;
    if (DENYING_RULES.has(m.ruleId)) {
      denied = true;
      break;
    }
  }
  if (mode === "on") {
    if (denied) return true;
    if (code === undefined) return null;
    if (code < 400) return false;
    return code === 403 && anyRule ? true : null;
  }
  if (code === undefined) return null;
  if (code < 400) return denied ? null : false;
  return denied ? true : null;
}

/** The facts of an event (see {@link CrsFacts}). */
export function crsFacts(event: WafEvent): CrsFacts {
  let threshold: number | undefined;
  let applicationAttack = false;
  let leakage = false;
  let paranoiaLevel: number | undefined;
  let inboundPoints = 0;
  let pl1Points = 0;
  const consider = (n: number) => {
    if (isApplicationAttackRule(n)) applicationAttack = true;
    else if (isLeakageRule(n)) leakage = true;
  };
  for (const m of event.messages) {
    if (threshold === undefined && m.threshold !== undefined) threshold = m.threshold;
    if (m.paranoiaLevel !== undefined && (paranoiaLevel ?? 0) < m.paranoiaLevel) {
      paranoiaLevel = m.paranoiaLevel;
    }
    const n = ruleNumber(m.ruleId);
    consider(n);
    if (n >= 911000 && n <= 948999) {
      const points = severityPoints(m.severity);
      inboundPoints += points;
      if (m.paranoiaLevel === undefined || m.paranoiaLevel <= 1) pl1Points += points;
    }
  }
  // The router's classification names a rule too (it counts for categories as well).
  consider(ruleNumber(event.classificationRuleId));
  return {
    blocked: blockedOf(event),
    threshold: threshold ?? DEFAULT_INBOUND_THRESHOLD,
    thresholdStated: threshold !== undefined,
    applicationAttack,
    leakage,
    inboundPoints,
    pl1Points,
    paranoiaLevel,
  };
}
