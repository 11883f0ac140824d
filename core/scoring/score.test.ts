import { describe, expect, it } from "vitest";
import { envelope, fixtureLines } from "../../test/fixtures/records.ts";
import { normalise } from "../event/normalise.ts";
import type { RuleMatch, WafEvent } from "../event/types.ts";
import { anomalyScore, severityPoints } from "./anomaly.ts";
import { categoryName, categoryOf, isEvaluationRule } from "./categories.ts";
import { Reputation } from "./reputation.ts";
import { DEFAULT_SCORING, levelOf, scoreEvent } from "./score.ts";

const event = (over: Partial<WafEvent> = {}): WafEvent => ({
  format: "envelope",
  txId: "t",
  clientIp: "203.0.113.9",
  anomalyScore: undefined,
  classificationRuleId: undefined,
  messages: [],
  timeNs: undefined,
  timePrecisionNs: 1_000_000n,
  method: undefined,
  uri: undefined,
  hostname: undefined,
  responseCode: undefined,
  engineMode: undefined,
  interrupted: undefined,
  ...over,
});
const m = (
  ruleId: string | undefined,
  severity?: unknown,
  message?: string,
  msg?: string,
): RuleMatch => ({
  ruleId,
  severity,
  message,
  msg,
  paranoiaLevel: undefined,
  threshold: undefined,
});
const noRep = Reputation.fromLists({});

describe("the reference §3 worked example", () => {
  it("scores the envelope with rule 942100 and anomaly 65 as 95, critical", () => {
    const n = normalise(JSON.stringify(envelope({ anomaly: 65, rules: ["942100"] })), {
      maxRecordBytes: 1 << 20,
    });
    if (!n.ok) throw new Error(n.reason);
    const s = scoreEvent(n.event, DEFAULT_SCORING, noRep);
    expect(s).toMatchObject({
      anomalyScore: 65,
      severity: 95,
      level: "critical",
      ruleId: "942100",
      categories: ["sqli"],
      alert: true,
    });
  });
});

describe("anomaly score", () => {
  it.each([
    [
      "the transaction's own score wins over everything",
      {
        anomalyScore: 7,
        messages: [
          m("949110", "2", "Inbound Anomaly Score Exceeded (Total Score: 40)"),
          m("942100", "2"),
        ],
      },
      7,
    ],
    [
      "0 is a value, not a reason to fall back",
      { anomalyScore: 0, messages: [m("949110", "2", "Total Score: 40"), m("942100", "2")] },
      0,
    ],
    [
      "949110 Total Score in message",
      {
        messages: [
          m("942100", "2"),
          m("949110", "2", "Inbound Anomaly Score Exceeded (Total Score: 23)"),
        ],
      },
      23,
    ],
    [
      "949111 (early blocking) counts",
      { messages: [m("949111", "2", "Inbound Anomaly Score Exceeded (Total Score: 12)")] },
      12,
    ],
    [
      "the rule's msg when message has none",
      {
        messages: [
          m("949110", "2", "something else", "Inbound Anomaly Score Exceeded (Total Score: 31)"),
        ],
      },
      31,
    ],
    [
      "the first 949110/949111 with a total wins",
      {
        messages: [
          m("949110", "2", "no total here"),
          m("949111", "2", "Total Score: 9"),
          m("949110", "2", "Total Score: 50"),
        ],
      },
      9,
    ],
    [
      "959100 outbound total never counts",
      {
        messages: [
          m("959100", "0", "Outbound Anomaly Score Exceeded (Total Score: 22)"),
          m("941100", "2"),
        ],
      },
      5,
    ],
    [
      "980xxx reporting never counts",
      {
        messages: [
          m("980130", "2", "Inbound Anomaly Score Exceeded (Total Score: 99)"),
          m("942100", "3"),
        ],
      },
      4,
    ],
    [
      "949110 without a total falls back to the CRS sum",
      {
        messages: [
          m("949110", "2", "Inbound Anomaly Score Exceeded"),
          m("942100", "2"),
          m("920350", "4"),
        ],
      },
      8,
    ],
    [
      "CRS sum: critical 5, error 4, warning 3, notice 2",
      { messages: [m("942100", "2"), m("942101", "3"), m("920350", "4"), m("920230", "5")] },
      14,
    ],
    [
      "CRS sum: a repeated rule counts again",
      { messages: [m("942100", "2"), m("942100", "2")] },
      10,
    ],
    ["CRS sum: integer severities (Coraza)", { messages: [m("942100", 2), m("941100", 3)] }, 9],
    [
      "CRS sum: other severities are 0",
      {
        messages: [
          m("942100", "0"),
          m("942100", 1),
          m("942100", "CRITICAL"),
          m("942100", 6),
          m("942100", null),
          m("942100", "2.0"),
        ],
      },
      0,
    ],
    [
      "CRS sum: only 911000–948999 counts",
      {
        messages: [
          m("910999", "2"),
          m("911000", "2"),
          m("948999", "2"),
          m("949000", "2"),
          m("950100", "2"),
          m("1234", "2"),
        ],
      },
      10,
    ],
    ["CRS sum: 949xxx itself is outside the range", { messages: [m("949110", "2")] }, 0],
    ["no messages, no score", { messages: [] }, 0],
  ])("%s", (_name, over, expected) => {
    expect(anomalyScore(event(over as Partial<WafEvent>))).toBe(expected);
  });

  it.each([
    [2, 5],
    ["2", 5],
    [" 3 ", 4],
    ["4", 3],
    [5, 2],
    [0, 0],
    [2.5, 0],
    ["two", 0],
    [undefined, 0],
    [{}, 0],
  ])("severity %j is worth %i points", (sev, points) => {
    expect(severityPoints(sev)).toBe(points);
  });
});

describe("categories", () => {
  it.each([
    ["942100", "942", "sqli"],
    ["941100", "941", "xss"],
    ["932160", "932", "rce"],
    ["930120", "930", "lfi"],
    ["931100", "931", "rfi"],
    ["933100", "933", "php"],
    ["934100", "934", "generic-injection"],
    ["943100", "943", "session-fixation"],
    ["944100", "944", "java"],
    ["913100", "913", "scanner"],
    ["920350", "920", "protocol"],
    ["921110", "921", "protocol"],
    ["911100", "911", "method"],
    ["950150", "950", "leakage"],
    ["955100", "955", "leakage"],
    ["123456", "123", "other"],
  ])("%s → prefix %s (%s)", (id, prefix, name) => {
    expect(categoryOf(id)).toBe(prefix);
    expect(categoryName(prefix)).toBe(name);
  });

  it.each(["949110", "949111", "959100", "980170", "94210", "9421000", "abc123", ""])(
    "%j has no category",
    (id) => {
      expect(categoryOf(id)).toBeUndefined();
    },
  );

  it("knows the evaluation rules", () => {
    expect(["949110", "959100", "980170", "942100"].map(isEvaluationRule)).toEqual([
      true,
      true,
      true,
      false,
    ]);
  });
});

describe("severity, weights and rule_id", () => {
  const score = (over: Partial<WafEvent>, rep = noRep, cfg = DEFAULT_SCORING) =>
    scoreEvent(event(over), cfg, rep);

  it.each([
    [
      "a weight is applied once per distinct category",
      { anomalyScore: 10, messages: [m("942100"), m("942200"), m("942300")] },
      40,
      "942100",
    ],
    [
      "every seed weight adds up",
      { anomalyScore: 0, messages: [m("942100"), m("941100"), m("932100"), m("930100")] },
      110,
      "932100",
    ],
    [
      "unweighted categories add 0",
      { anomalyScore: 20, messages: [m("933100"), m("913100"), m("920350")] },
      20,
      "933100",
    ],
    [
      "classification.rule_id adds its category and is reported",
      { anomalyScore: 10, classificationRuleId: "941100", messages: [m("942100")] },
      65,
      "941100",
    ],
    [
      "classification.rule_id of a category already present adds nothing more",
      { anomalyScore: 10, classificationRuleId: "942999", messages: [m("942100")] },
      40,
      "942999",
    ],
    [
      "a non-numeric classification.rule_id is reported but weighs nothing",
      { anomalyScore: 10, classificationRuleId: "custom-sqli", messages: [m("933100")] },
      10,
      "custom-sqli",
    ],
    [
      "evaluation rules are never reported",
      { anomalyScore: 3, messages: [m("949110", "2", "Total Score: 3"), m("980170")] },
      3,
      "none",
    ],
    [
      "the heaviest category is reported",
      { anomalyScore: 0, messages: [m("920350"), m("941100"), m("932100"), m("942100")] },
      90,
      "932100",
    ],
    [
      "ties go to the first in message order",
      { anomalyScore: 0, messages: [m("942200"), m("942100")] },
      30,
      "942200",
    ],
    [
      "with no weighted category the first rule is reported",
      { anomalyScore: 0, messages: [m("949110"), m("920350"), m("913100")] },
      0,
      "920350",
    ],
    [
      "IDs not of six digits can be reported",
      { anomalyScore: 0, messages: [m("1234"), m("920350")] },
      0,
      "1234",
    ],
    [
      "messages without a rule are skipped",
      { anomalyScore: 0, messages: [m(undefined), m("913100")] },
      0,
      "913100",
    ],
  ])("%s", (_name, over, severity, ruleId) => {
    const s = score(over as Partial<WafEvent>);
    expect(s.severity).toBe(severity);
    expect(s.ruleId).toBe(ruleId);
  });

  it("reports category short names once each, in order of appearance", () => {
    const s = score({ messages: [m("920350"), m("942100"), m("921110"), m("942100")] });
    expect(s.categories).toEqual(["protocol", "sqli"]);
    expect(s.categoryPrefixes).toEqual(["920", "942", "921"]);
  });

  it("does not cap severity", () => {
    expect(score({ anomalyScore: 500, messages: [m("942100")] }).severity).toBe(530);
  });

  it.each([
    [80, "critical"],
    [79, "high"],
    [60, "high"],
    [59, "medium"],
    [40, "medium"],
    [39, "low"],
    [0, "low"],
  ])("severity %i is %s", (severity, level) => {
    expect(levelOf(severity, DEFAULT_SCORING.thresholds)).toBe(level);
  });

  it("uses configured weights and thresholds", () => {
    const cfg = {
      ...DEFAULT_SCORING,
      weights: { "933": 50 },
      thresholds: { critical: 50, high: 30, medium: 10 },
    };
    const s = score({ anomalyScore: 5, messages: [m("933100"), m("942100")] }, noRep, cfg);
    expect(s).toMatchObject({ severity: 55, level: "critical", ruleId: "933100", alert: true });
  });

  it("ignores weights inherited from Object.prototype", () => {
    const s = score(
      { anomalyScore: 1, classificationRuleId: undefined, messages: [m("942100")] },
      noRep,
      {
        ...DEFAULT_SCORING,
        weights: {},
      },
    );
    expect(s.severity).toBe(1);
  });
});

describe("IP reputation", () => {
  const rep = Reputation.fromLists({
    malicious: ["203.0.113.0/24", "2001:db8:bad::/48", "198.51.100.7"],
    allowlist: ["203.0.113.200", "10.0.0.0/8"],
  });
  const withIp = (ip: string, anomaly = 70) =>
    scoreEvent(event({ clientIp: ip, anomalyScore: anomaly }), DEFAULT_SCORING, rep);

  it.each([
    ["a listed IPv4 address", "198.51.100.7", 85, true],
    ["an IPv4 address in a listed CIDR", "203.0.113.9", 85, true],
    ["an IPv6 address in a listed CIDR", "2001:db8:bad:1::9", 85, true],
    ["an IPv4-mapped IPv6 address of a listed IPv4 network", "::ffff:203.0.113.9", 85, true],
    ["an unlisted address", "192.0.2.1", 70, false],
  ])("%s gets %i", (_name, ip, severity, alert) => {
    const s = withIp(ip);
    expect(s.severity).toBe(severity);
    expect(s.alert).toBe(alert);
    expect(s.malicious).toBe(severity === 85);
  });

  it("the allowlist wins: no bonus, no alert, severity and level still computed", () => {
    const s = withIp("203.0.113.200", 90);
    expect(s).toMatchObject({
      severity: 90,
      level: "critical",
      allowlisted: true,
      malicious: false,
      alert: false,
    });
    expect(withIp("::ffff:10.1.2.3", 95)).toMatchObject({
      level: "critical",
      allowlisted: true,
      alert: false,
    });
  });

  it("reads extra in-memory sources (threat intelligence)", () => {
    const extra = Reputation.fromLists({
      extraSources: [{ has: (ip) => ip.version === 4 && ip.value === 0x08080808n }],
    });
    expect(
      scoreEvent(event({ clientIp: "8.8.8.8", anomalyScore: 0 }), DEFAULT_SCORING, extra).severity,
    ).toBe(15);
  });
});

describe("real fixtures", () => {
  it("scores the CRS 4 XSS record: CRS sum 5 (941100 critical) + XSS 25 = 30, low", () => {
    const line = fixtureLines("modsec3-crs4_longhdwst1full_mod-security-config.jsonl")[0] as string;
    const n = normalise(line, { maxRecordBytes: 1 << 20 });
    if (!n.ok) throw new Error(n.reason);
    expect(scoreEvent(n.event, DEFAULT_SCORING, noRep)).toMatchObject({
      anomalyScore: 5,
      severity: 30,
      level: "low",
      ruleId: "941100",
      categories: ["xss", "leakage"],
      alert: false,
    });
  });
});
