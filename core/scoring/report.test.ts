import { describe, expect, it } from "vitest";
import type { RuleMatch, WafEvent } from "../event/types.ts";
import { ReportBuilder, type ReportRow } from "./report.ts";
import { Reputation } from "./reputation.ts";
import { DEFAULT_SCORING, type ScoringConfig, scoreEvent } from "./score.ts";

const m = (ruleId: string, threshold?: number): RuleMatch => ({
  ruleId,
  severity: "2",
  message: ruleId === "949110" ? "Inbound Anomaly Score Exceeded (Total Score: 0)" : undefined,
  msg: undefined,
  paranoiaLevel: 1,
  threshold,
});

/** A ModSecurity record: rules, an anomaly score, blocked (403, enforcing) or passed (200). */
const ev = (rules: string[], anomaly: number, blocked: boolean, threshold = 5): WafEvent => ({
  format: "modsec3",
  txId: `t-${rules.join("-")}-${anomaly}-${blocked}`,
  clientIp: "203.0.113.9",
  anomalyScore: anomaly,
  classificationRuleId: undefined,
  messages: [...rules.map((r) => m(r)), m("949110", threshold)],
  timeNs: undefined,
  timePrecisionNs: 1_000_000_000n,
  method: "GET",
  uri: "/",
  hostname: undefined,
  responseCode: blocked ? 403 : 200,
  engineMode: blocked ? "on" : "detection-only",
  interrupted: undefined,
});

const CRS: ScoringConfig = { ...DEFAULT_SCORING, profile: "crs" };
const rep = Reputation.fromLists({});

function build(events: Array<[WafEvent, string?]>, config = CRS) {
  const b = new ReportBuilder();
  for (const [e, label] of events) b.add(e, scoreEvent(e, config, rep), label);
  return b.build();
}

const row = (r: ReturnType<typeof build>, section: RegExp, label: string): ReportRow => {
  const found = r.sections.find((s) => section.test(s.title))?.rows.find((x) => x.label === label);
  if (!found) throw new Error(`no row ${label}`);
  return found;
};

describe("the --report level table", () => {
  const events: Array<[WafEvent, string]> = [
    [ev(["942100"], 5, true), "attack"],
    [ev(["942100", "942200"], 20, true), "attack"],
    [ev(["932100", "942190"], 10, false), "benign"],
    [ev(["911100"], 5, false), "benign"],
    [ev(["920350"], 3, false), "attack"],
  ];
  const r = build(events);

  it("counts every record once in 'all' and once by what the firewall did", () => {
    expect(r.records).toBe(5);
    expect(row(r, /^all$/, "all records")).toEqual({
      label: "all records",
      records: 5,
      levels: { low: 2, medium: 1, high: 1, critical: 1 },
      alerts: 1,
    });
    expect(row(r, /firewall/, "blocked").records).toBe(2);
    expect(row(r, /firewall/, "reached the application").records).toBe(3);
  });

  it.each([
    ["sqli (942)", 3, { low: 1, medium: 0, high: 1, critical: 1 }],
    ["rce (932)", 1, { low: 0, medium: 0, high: 0, critical: 1 }],
    ["method (911)", 1, { low: 0, medium: 1, high: 0, critical: 0 }],
    ["protocol (920)", 1, { low: 1, medium: 0, high: 0, critical: 0 }],
  ])("counts a record in each of its categories: %s", (label, records, levels) => {
    expect(row(r, /category/, label)).toMatchObject({ records, levels });
  });

  it.each([
    ["below the threshold", 1],
    ["at the threshold (one critical rule)", 2],
    ["2× to under 4× the threshold", 1],
    ["4× the threshold or more", 1],
  ])("bands scores against each record's threshold: %s", (label, records) => {
    expect(row(r, /threshold/, label).records).toBe(records);
  });

  it("uses the record's own threshold for the band", () => {
    const t = build([[ev(["942100"], 20, true, 10)]]);
    expect(row(t, /threshold/, "2× to under 4× the threshold").records).toBe(1);
  });

  it("adds a row per label only when labels are given, and counts invalid lines", () => {
    expect(row(r, /label/, "benign")).toMatchObject({ records: 2, alerts: 1 });
    const unlabelled = new ReportBuilder();
    unlabelled.invalidRecord();
    const u = unlabelled.build();
    expect(u.invalid).toBe(1);
    expect(u.sections.map((s) => s.title)).not.toContain("by label");
  });

  it("bounds the number of label rows", () => {
    const many = build(Array.from({ length: 30 }, (_, i) => [ev(["942100"], 5, true), `k${i}`]));
    const labels = many.sections.find((s) => s.title === "by label")?.rows ?? [];
    expect(labels).toHaveLength(21);
    expect(labels.find((x) => x.label === "other labels")?.records).toBe(10);
  });

  it("grades the same records by the seed profile when asked", () => {
    const seed = build(events, DEFAULT_SCORING);
    expect(row(seed, /^all$/, "all records").levels).toEqual({
      low: 3,
      medium: 1,
      high: 1,
      critical: 0,
    });
  });
});
