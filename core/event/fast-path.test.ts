/**
 * The formats' fast readers must agree with their zod schemas: whenever a fast reader returns
 * an event, the schema path returns exactly the same event; and valid records of every format
 * take the fast path (otherwise it is dead weight).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { corazaText, corpusLines, envelope, fixtureLines } from "../../test/fixtures/records.ts";
import { corazaFast } from "./coraza.ts";
import { envelopeFast } from "./envelope.ts";
import { type Fast, INVALID } from "./fields.ts";
import { isIp } from "./ip.ts";
import { modsec3Fast } from "./modsec3.ts";
import { detectFormat, normaliseWithSchema } from "./normalise.ts";
import type { EventFormat, WafEvent } from "./types.ts";

const FAST: Record<EventFormat, (rec: Record<string, unknown>) => Fast<WafEvent>> = {
  envelope: envelopeFast,
  modsec3: modsec3Fast,
  coraza: corazaFast,
};

/** The fast reader's answer, checked against the schema's; true when the fast path decided. */
function agrees(rec: unknown): boolean {
  const format = detectFormat(rec);
  if (typeof format !== "string") return false;
  const fast = FAST[format](rec as Record<string, unknown>);
  if (fast === INVALID) return false;
  expect(normaliseWithSchema(rec, format)).toStrictEqual({ ok: true, event: fast });
  return true;
}

const valid: Array<[string, unknown]> = [
  ...fixtureLines("modsec3-crs4_longhdwst1full_mod-security-config.jsonl").map(
    (l, i) => [`CRS 4 fixture ${i}`, JSON.parse(l)] as [string, unknown],
  ),
  ...fixtureLines("modsec3.0.4_elastic-integrations_test-audit.log").map(
    (l, i) => [`ModSecurity 3.0.4 fixture ${i}`, JSON.parse(l)] as [string, unknown],
  ),
  ["the reference envelope", envelope({ anomaly: 65, rules: ["942100"] })],
  [
    "an envelope with classification, response and severities",
    {
      ...envelope({ anomaly: 3.7, classification: { track: "x", rule_id: " 941100 " } }),
      transaction: {
        ...(envelope().transaction as object),
        id: 12345,
        response: { status: 403 },
        messages: [{ message: null, details: { ruleId: 942100, severity: "2", msg: null } }, {}],
      },
    },
  ],
  ["a Coraza record", JSON.parse(corazaText({ id: "c1" }))],
  // Real CRS 3 and CRS 4 records (blocking and DetectionOnly): threshold, tags, engine mode.
  ...["crs3-pl1.jsonl.gz", "crs4-pl1-sample.jsonl.gz", "crs4-pl1-detect-sample.jsonl.gz"].flatMap(
    (file) =>
      corpusLines(file)
        .filter((_l, i) => i % 50 === 0)
        .map(
          (l, i) =>
            [`${file} record ${i * 50}`, JSON.parse(l.toString("utf8"))] as [string, unknown],
        ),
  ),
  [
    "a ModSecurity v3.0.2 record with the old id",
    { transaction: { id: "old-1", client_ip: "::ffff:1.2.3.4", time_stamp: "x", messages: null } },
  ],
];

describe("fast readers", () => {
  it.each(valid)("decide %s exactly as the schema does", (_name, rec) => {
    expect(agrees(rec)).toBe(true);
  });

  it("leave invalid records to the schema", () => {
    for (const rec of [
      { transaction: { id: "", client_ip: "1.2.3.4" } },
      { transaction: { id: "a", client_ip: "1.2.3" } },
      { transaction: { id: "a", client_ip: "1.2.3.4", anomaly_score: "5" } },
      { transaction: { id: "a", client_ip: "1.2.3.4", anomaly_score: -1 } },
      { transaction: { unique_id: null, id: "a", client_ip: "1.2.3.4", producer: {} } },
      { transaction: { client_ip: "1.2.3.4", producer: {} } },
      { transaction: { id: "a", client_ip: "1.2.3.4" }, messages: [1] },
      {
        transaction: { id: "a", client_ip: "1.2.3.4" },
        classification: { rule_id: "x".repeat(257) },
      },
    ]) {
      const format = detectFormat(rec) as EventFormat;
      expect(FAST[format](rec)).toBe(INVALID);
    }
  });

  it("agree with the schema on records with fields of arbitrary types in every known place", () => {
    const anything = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom("1.2.3.4", "::1", "::ffff:1.2.3.4", "", " ", "942100", "949110", null),
      fc.constantFrom(0, -0, 1.5, 403, 1e21, 2 ** 53, Number.MAX_SAFE_INTEGER, "403"),
    );
    const tags = fc.oneof(
      anything,
      fc.array(
        fc.oneof(
          anything,
          fc.constantFrom(
            "paranoia-level/1",
            "paranoia-level/4",
            "paranoia-level/5",
            "paranoia-level/",
          ),
          fc.constantFrom(
            "paranoia-level/12",
            "PARANOIA-LEVEL/2",
            "attack-sqli",
            "paranoia-level/0",
          ),
        ),
        { maxLength: 5 },
      ),
    );
    const match = fc.oneof(
      anything,
      fc.constantFrom(
        "Matched \"Operator `Ge' with parameter `5' against variable `TX:ANOMALY_SCORE' (Value: `10' )",
        "Matched \"Operator `Ge' with parameter `0' against variable `TX:ANOMALY_SCORE' (Value: `0' )",
        "with parameter `7' against variable `TX:BLOCKING_INBOUND_ANOMALY_SCORE'",
        "with parameter `99999999' against variable `TX:ANOMALY_SCORE'",
        "with parameter `4' against variable `TX:OUTBOUND_ANOMALY_SCORE'",
      ),
    );
    const details = fc.record(
      {
        ruleId: fc.oneof(anything, fc.constantFrom("949110", "949111", 949110)),
        id: fc.oneof(anything, fc.constantFrom("949110", 949111)),
        severity: anything,
        msg: anything,
        tags,
        match,
      },
      { requiredKeys: [] },
    );
    const producer = fc.oneof(
      anything,
      fc.record(
        {
          secrules_engine: fc.oneof(
            anything,
            fc.constantFrom("Enabled", "DetectionOnly", "Disabled", "constructor", "__proto__"),
          ),
          rule_engine: fc.oneof(anything, fc.constantFrom("On", "DetectionOnly", "Off", "on ")),
        },
        { requiredKeys: [] },
      ),
    );
    const msg = fc.record(
      {
        message: anything,
        details: fc.oneof(details, anything),
        data: fc.oneof(details, anything),
      },
      { requiredKeys: [] },
    );
    const transaction = fc.record(
      {
        id: anything,
        unique_id: anything,
        client_ip: fc.oneof(anything, fc.constantFrom("203.0.113.9", "2001:db8::1")),
        anomaly_score: anything,
        time_stamp: anything,
        unix_timestamp: anything,
        timestamp: anything,
        producer,
        is_interrupted: fc.oneof(anything, fc.boolean()),
        request: fc.oneof(
          anything,
          fc.record(
            {
              uri: anything,
              method: anything,
              hostname: anything,
              host: anything,
              http_version: anything,
            },
            { requiredKeys: [] },
          ),
        ),
        response: fc.oneof(
          anything,
          fc.record({ http_code: anything, status: anything }, { requiredKeys: [] }),
        ),
        messages: fc.oneof(anything, fc.array(msg, { maxLength: 4 })),
      },
      { requiredKeys: [] },
    );
    const record = fc.record(
      {
        transaction,
        messages: fc.oneof(anything, fc.array(msg, { maxLength: 4 })),
        classification: fc.oneof(
          anything,
          fc.record({ track: anything, rule_id: anything }, { requiredKeys: [] }),
        ),
      },
      { requiredKeys: ["transaction"] },
    );
    let decided = 0;
    fc.assert(
      fc.property(record, (rec) => {
        // Through JSON, as records arrive (drops undefined, turns -0 into 0).
        if (agrees(JSON.parse(JSON.stringify(rec)))) decided++;
      }),
      { numRuns: 3000 },
    );
    expect(decided).toBeGreaterThan(0);
  });
});

describe("IPv4 scanner", () => {
  /** The dotted-quad rule as a regex, for comparison: 4 octets, no leading zeros, at most 255. */
  const reference = (text: string) => {
    const parts = text.split(".");
    return (
      parts.length === 4 && parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)
    );
  };

  it("accepts exactly the dotted quads the regex rule accepts", () => {
    const chunk = fc.oneof(
      fc.constantFrom("0", "00", "01", "1", "9", "10", "99", "100", "199", "255", "256", "999"),
      fc.constantFrom("1000", "", " ", "a", "-1", "+1", "١"),
      fc.string({ maxLength: 4 }),
    );
    fc.assert(
      fc.property(fc.array(chunk, { minLength: 1, maxLength: 6 }), (parts) => {
        const text = parts.join(".");
        if (text.length === 0 || text.length > 64 || text.includes(":")) return;
        expect(isIp(text)).toBe(reference(text));
      }),
      { numRuns: 5000 },
    );
  });
});
