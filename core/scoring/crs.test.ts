import { describe, expect, it } from "vitest";
import { envelope } from "../../test/fixtures/records.ts";
import { normalise } from "../event/normalise.ts";
import type { EngineMode, RuleMatch, WafEvent } from "../event/types.ts";
import { CRS_PROFILE, crsSeverity } from "./crs.ts";
import { blockedOf, type CrsFacts, crsFacts } from "./facts.ts";
import { Reputation } from "./reputation.ts";
import { DEFAULT_SCORING, levelOf, type ScoringConfig, scoreEvent } from "./score.ts";

const m = (ruleId: string | undefined, over: Partial<RuleMatch> = {}): RuleMatch => ({
  ruleId,
  severity: undefined,
  message: undefined,
  msg: undefined,
  paranoiaLevel: undefined,
  threshold: undefined,
  ...over,
});

const event = (over: Partial<WafEvent> = {}): WafEvent => ({
  format: "modsec3",
  txId: "t",
  clientIp: "203.0.113.9",
  anomalyScore: undefined,
  classificationRuleId: undefined,
  messages: [],
  timeNs: undefined,
  timePrecisionNs: 1_000_000_000n,
  method: undefined,
  uri: undefined,
  hostname: undefined,
  responseCode: undefined,
  engineMode: undefined,
  interrupted: undefined,
  ...over,
});

/** A CRS record: its rules, then 949110 with `Total Score: total` against `threshold`. */
const crsEvent = (o: {
  rules: string[];
  total?: number;
  threshold?: number;
  code?: number;
  mode?: EngineMode;
  pl?: number;
  ip?: string;
}): WafEvent =>
  event({
    clientIp: o.ip ?? "203.0.113.9",
    engineMode: o.mode ?? "on",
    responseCode: o.code ?? 403,
    messages: [
      ...o.rules.map((id) => m(id, { severity: "2", paranoiaLevel: o.pl ?? 1 })),
      ...(o.total === undefined
        ? []
        : [
            m("949110", {
              message: `Inbound Anomaly Score Exceeded (Total Score: ${o.total})`,
              threshold: o.threshold ?? 5,
            }),
          ]),
    ],
  });

const CRS: ScoringConfig = { ...DEFAULT_SCORING, profile: "crs" };
const noRep = Reputation.fromLists({});
const crs = (e: WafEvent, rep = noRep) => scoreEvent(e, CRS, rep);

describe("blocked or not", () => {
  const denied = [m("942100"), m("949110")];
  it.each<[string, Partial<WafEvent>, boolean | null]>([
    ["Coraza interrupted", { interrupted: true, responseCode: 200 }, true],
    ["Coraza not interrupted", { interrupted: false, responseCode: 403, messages: denied }, false],
    [
      "DetectionOnly, whatever the status",
      { engineMode: "detection-only", responseCode: 403, messages: denied },
      false,
    ],
    ["engine off", { engineMode: "off", responseCode: 403, messages: denied }, false],
    ["enforcing, 949110, 403", { engineMode: "on", responseCode: 403, messages: denied }, true],
    ["enforcing, 949110, no status", { engineMode: "on", messages: denied }, true],
    [
      "enforcing, 949110, 302 (redirect action)",
      { engineMode: "on", responseCode: 302, messages: denied },
      true,
    ],
    [
      "enforcing, 949110, but 200 (ctl:ruleEngine)",
      { engineMode: "on", responseCode: 200, messages: denied },
      false,
    ],
    [
      "enforcing, 200002 body error, 400",
      { engineMode: "on", responseCode: 400, messages: [m("200002")] },
      true,
    ],
    [
      "enforcing, a warning below the threshold, 200",
      { engineMode: "on", responseCode: 200, messages: [m("920350")] },
      false,
    ],
    [
      "enforcing, a rule and 403 (traditional mode)",
      { engineMode: "on", responseCode: 403, messages: [m("942100")] },
      true,
    ],
    [
      "enforcing, the site's own 416, no rule",
      { engineMode: "on", responseCode: 416, messages: [] },
      null,
    ],
    [
      "enforcing, the site's 404 after a warning",
      { engineMode: "on", responseCode: 404, messages: [m("920350")] },
      null,
    ],
    [
      "enforcing, the site's redirect",
      { engineMode: "on", responseCode: 301, messages: [m("920350")] },
      false,
    ],
    ["enforcing, no status, no denying rule", { engineMode: "on", messages: [m("920350")] }, null],
    ["mode unknown, 949110 and 403", { responseCode: 403, messages: denied }, true],
    ["mode unknown, 200", { responseCode: 200, messages: denied }, false],
    ["mode unknown, 302 and 949110", { responseCode: 302, messages: denied }, null],
    [
      "mode unknown, 403 without a denying rule",
      { responseCode: 403, messages: [m("942100")] },
      null,
    ],
    ["mode unknown, no status (the envelope)", { format: "envelope", messages: denied }, null],
  ])("%s: %j", (_name, over, expected) => {
    expect(blockedOf(event(over))).toBe(expected);
  });
});

describe("crs facts", () => {
  it.each<[string, RuleMatch[], string | undefined, Partial<CrsFacts>]>([
    [
      "the stated threshold, and the highest paranoia level",
      [
        m("942100", { paranoiaLevel: 1, severity: "2" }),
        m("942200", { paranoiaLevel: 2, severity: "2" }),
        m("949110", { threshold: 7, severity: "2" }),
      ],
      undefined,
      {
        threshold: 7,
        thresholdStated: true,
        paranoiaLevel: 2,
        applicationAttack: true,
        inboundPoints: 10,
        pl1Points: 5,
      },
    ],
    [
      "the default threshold 5 when none is stated",
      [m("920350")],
      undefined,
      { threshold: 5, thresholdStated: false, applicationAttack: false, leakage: false },
    ],
    [
      "application-attack rules only at paranoia level 2",
      [
        m("942200", { paranoiaLevel: 2, severity: "2" }),
        m("941101", { paranoiaLevel: 3, severity: 4 }),
      ],
      undefined,
      { applicationAttack: true, inboundPoints: 8, pl1Points: 0, paranoiaLevel: 3 },
    ],
    [
      "a rule without a level counts as level 1; severities by CRS points",
      [
        m("932100", { severity: "2" }),
        m("920350", { severity: "4", paranoiaLevel: 1 }),
        m("920300", { severity: 5, paranoiaLevel: 2 }),
      ],
      undefined,
      { applicationAttack: true, inboundPoints: 10, pl1Points: 8 },
    ],
    [
      "only inbound detection rules 911000–948999 carry points",
      [
        m("949110", { severity: "2" }),
        m("959100", { severity: "2" }),
        m("951120", { severity: "2" }),
        m("200002", { severity: "2" }),
      ],
      undefined,
      { inboundPoints: 0, pl1Points: 0, leakage: true },
    ],
    [
      "the range 930000–944999 exactly",
      [m("929999"), m("945000")],
      undefined,
      { applicationAttack: false },
    ],
    ["944999 is an application attack", [m("944999")], undefined, { applicationAttack: true }],
    [
      "outbound leakage 950–956",
      [m("951120"), m("959100")],
      undefined,
      { leakage: true, applicationAttack: false },
    ],
    [
      "959 and 980 are not leakage",
      [m("959100"), m("980170"), m("957000")],
      undefined,
      { leakage: false },
    ],
    ["the envelope's classification counts", [], "942100", { applicationAttack: true }],
    [
      "IDs not of six digits count for nothing",
      [m("94210"), m("9421000"), m("94210x")],
      undefined,
      { applicationAttack: false },
    ],
  ])("%s", (_name, messages, classificationRuleId, expected) => {
    expect(crsFacts(event({ messages, classificationRuleId }))).toMatchObject(expected);
  });
});

describe("crs severity", () => {
  const facts = (over: Partial<CrsFacts>): CrsFacts => ({
    blocked: true,
    threshold: 5,
    thresholdStated: true,
    applicationAttack: true,
    leakage: false,
    inboundPoints: 10,
    pl1Points: 10,
    paranoiaLevel: 1,
    ...over,
  });

  it.each<[string, number, Partial<CrsFacts>, number, string]>([
    ["blocked attack at the threshold", 5, {}, 30, "low"],
    ["blocked attack at 2× the threshold", 10, {}, 40, "medium"],
    ["blocked attack at 4× the threshold", 20, {}, 60, "high"],
    ["blocked attack, 50 against 5: the ceiling", 50, {}, 70, "high"],
    ["blocked attack, threshold 10, score 40", 40, { threshold: 10 }, 60, "high"],
    [
      "blocked, not an application attack, at the threshold",
      5,
      { applicationAttack: false },
      20,
      "low",
    ],
    [
      "blocked, not an application attack, high score",
      50,
      { applicationAttack: false },
      45,
      "medium",
    ],
    ["blocked below the threshold (ModSecurity's body check)", 0, {}, 0, "low"],
    ["passed attack at the threshold", 5, { blocked: false }, 60, "high"],
    ["passed attack at 2× the threshold", 10, { blocked: false }, 80, "critical"],
    ["passed attack at 3× the threshold", 15, { blocked: false }, 100, "critical"],
    ["passed attack below the threshold", 4, { blocked: false }, 48, "medium"],
    ["unknown counts as passed", 10, { blocked: null }, 80, "critical"],
    [
      "passed attack seen only by PL2 rules stays high",
      25,
      { blocked: false, pl1Points: 0 },
      79,
      "high",
    ],
    [
      "passed attack whose PL1 part is under 2× the threshold stays high",
      10,
      { blocked: false, pl1Points: 5, inboundPoints: 10, paranoiaLevel: 2 },
      79,
      "high",
    ],
    [
      "passed attack whose PL1 part reaches 2× the threshold is critical",
      23,
      { blocked: false, pl1Points: 10, inboundPoints: 23, paranoiaLevel: 2 },
      100,
      "critical",
    ],
    [
      "nothing logged with points: the whole score counts",
      10,
      { blocked: false, pl1Points: 0, inboundPoints: 0 },
      80,
      "critical",
    ],
    ["a blocked attack seen only by PL2 rules", 20, { pl1Points: 0 }, 60, "high"],
    [
      "passed, not an application attack, at the threshold",
      5,
      { blocked: false, applicationAttack: false },
      40,
      "medium",
    ],
    [
      "passed, not an application attack, 3×",
      15,
      { blocked: false, applicationAttack: false },
      60,
      "high",
    ],
    [
      "passed, not an application attack, ceiling",
      500,
      { blocked: false, applicationAttack: false },
      70,
      "high",
    ],
    [
      "leakage, even blocked and at 0",
      0,
      { leakage: true, applicationAttack: false },
      90,
      "critical",
    ],
    [
      "leakage on top of a high passed attack",
      15,
      { blocked: false, leakage: true },
      100,
      "critical",
    ],
    [
      "a score at the top of the accepted range stays exact",
      1e15,
      { blocked: false },
      100,
      "critical",
    ],
  ])("%s: score %d → %d (%s)", (_name, anomaly, over, severity, level) => {
    const s = crsSeverity(anomaly, facts(over));
    expect(s).toBe(severity);
    expect(Number.isInteger(s)).toBe(true);
    expect(levelOf(s, DEFAULT_SCORING.thresholds)).toBe(level);
  });

  it("never decreases as the score rises, in every situation", () => {
    for (const blocked of [true, false, null]) {
      for (const applicationAttack of [true, false]) {
        for (const pl1Points of [10, 5, 0]) {
          for (const leakage of [true, false]) {
            for (const threshold of [1, 3, 5, 7, 25]) {
              const f = facts({
                blocked,
                applicationAttack,
                pl1Points,
                leakage,
                threshold,
              });
              let last = Number.NEGATIVE_INFINITY;
              for (let score = 0; score <= 300; score++) {
                const s = crsSeverity(score, f);
                expect(s).toBeGreaterThanOrEqual(last);
                last = s;
              }
            }
          }
        }
      }
    }
  });

  it("keeps a blocked request at the threshold below critical even from a known-malicious IP", () => {
    const max = CRS_PROFILE.blocked.attack.atThreshold + DEFAULT_SCORING.reputationPoints;
    expect(max).toBeLessThan(DEFAULT_SCORING.thresholds.critical);
  });
});

describe("scoring with SCORING_PROFILE=crs", () => {
  it.each<[string, Parameters<typeof crsEvent>[0], string, boolean | null]>([
    ["a blocked SQLi at the threshold", { rules: ["942100"], total: 5 }, "low", true],
    ["a blocked RCE at 4×", { rules: ["932100", "932110"], total: 20 }, "high", true],
    [
      "the same RCE in DetectionOnly",
      { rules: ["932100", "932110"], total: 20, mode: "detection-only", code: 200 },
      "critical",
      false,
    ],
    [
      "a DetectionOnly SQLi at the threshold",
      { rules: ["942100"], total: 5, mode: "detection-only", code: 200 },
      "high",
      false,
    ],
    [
      "a DetectionOnly method violation",
      { rules: ["911100"], total: 5, mode: "detection-only", code: 200 },
      "medium",
      false,
    ],
    [
      "a PL2-only SQLi in DetectionOnly at 3×",
      { rules: ["942200"], total: 15, mode: "detection-only", code: 200, pl: 2 },
      "high",
      false,
    ],
  ])("%s is %s", (_name, rec, level, blocked) => {
    const s = crs(crsEvent(rec));
    expect(s).toMatchObject({ level, blocked, profile: "crs" });
    expect(s.alert).toBe(level === "critical");
  });

  it("adds the reputation bonus, and the allowlist still wins", () => {
    const rec = crsEvent({ rules: ["932100", "932110"], total: 25 });
    const plain = crs(rec);
    const listed = crs(rec, Reputation.fromLists({ malicious: ["203.0.113.0/24"] }));
    const allowed = crs(
      crsEvent({ rules: ["932100"], total: 10, mode: "detection-only", code: 200 }),
      Reputation.fromLists({ malicious: ["203.0.113.0/24"], allowlist: ["203.0.113.9"] }),
    );
    expect(plain).toMatchObject({ severity: 70, level: "high", alert: false });
    expect(listed).toMatchObject({ severity: 85, level: "critical", alert: true, malicious: true });
    expect(allowed).toMatchObject({
      severity: 80,
      level: "critical",
      alert: false,
      allowlisted: true,
    });
  });

  it("shares the anomaly score, categories and rule_id with seed", () => {
    const rec = crsEvent({ rules: ["920350", "942100", "941100"], total: 13 });
    const seed = scoreEvent(rec, DEFAULT_SCORING, noRep);
    const c = crs(rec);
    expect(c.anomalyScore).toBe(seed.anomalyScore);
    expect(c.categories).toEqual(seed.categories);
    expect(c.ruleId).toBe(seed.ruleId);
    expect(c.severity).not.toBe(seed.severity);
  });

  it("scores the reference envelope (no status, no engine): treated as reached, critical", () => {
    const n = normalise(JSON.stringify(envelope({ anomaly: 65, rules: ["942100"] })), {
      maxRecordBytes: 1 << 20,
    });
    if (!n.ok) throw new Error(n.reason);
    expect(crs(n.event)).toMatchObject({ level: "critical", blocked: null, severity: 100 });
    // …and seed still gives the reference §3 worked example.
    expect(scoreEvent(n.event, DEFAULT_SCORING, noRep)).toMatchObject({
      severity: 95,
      level: "critical",
      profile: "seed",
      blocked: null,
    });
  });
});
