import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  corazaText,
  corpusLines,
  envelope,
  fixtureFiles,
  fixtureLines,
} from "../../test/fixtures/records.ts";
import { engineModeOf, paranoiaLevelOf, thresholdOf } from "./fields.ts";
import { detectFormat, normalise, utf8Length } from "./normalise.ts";
import type { WafEvent } from "./types.ts";

const opts = { maxRecordBytes: 1_048_576 };
const norm = (v: unknown) => normalise(typeof v === "string" ? v : JSON.stringify(v), opts);

describe("real ModSecurity fixtures", () => {
  it("covers every fixture file", () => {
    expect(fixtureFiles().sort()).toEqual([
      "modsec2-json_EyesOfArgus_first10.jsonl",
      "modsec3-crs4_longhdwst1full_mod-security-config.jsonl",
      "modsec3-crs4_longhdwst1full_rotated-153553.jsonl",
      "modsec3.0.4_elastic-integrations_test-audit.log",
    ]);
  });

  it("normalises every ModSecurity v3 (CRS 4) record", () => {
    const lines = [
      ...fixtureLines("modsec3-crs4_longhdwst1full_mod-security-config.jsonl"),
      ...fixtureLines("modsec3-crs4_longhdwst1full_rotated-153553.jsonl"),
    ];
    expect(lines).toHaveLength(7);
    for (const line of lines) {
      const r = norm(line);
      if (!r.ok) throw new Error(r.reason);
      expect(r.event.format).toBe("modsec3");
      expect(r.event.clientIp).toBe("172.18.0.1");
      expect(r.event.txId).toMatch(/^\d+\.\d+$/);
      expect(r.event.responseCode).toBe(403);
      expect(r.event.hostname).toBe("localhost");
    }
    const first = norm(lines[0]);
    if (!first.ok) throw new Error(first.reason);
    expect(first.event.txId).toBe("175310970922.478872");
    // "Mon Jul 21 21:55:09 2025" read as UTC.
    expect(first.event.timeNs).toBe(BigInt(Date.UTC(2025, 6, 21, 21, 55, 9)) * 1_000_000n);
    expect(first.event.method).toBe("POST");
    expect(first.event.messages.map((m) => [m.ruleId, m.severity])).toEqual([
      ["941100", "2"],
      ["950150", "3"],
      ["953100", "3"],
      ["954120", "3"],
      ["955100", "2"],
      ["955400", "2"],
      ["959100", "0"],
    ]);
    expect(first.event.messages[6]?.message).toContain("Total Score: 22");
  });

  it("normalises ModSecurity v3.0.4 records with a numeric http_version and empty messages", () => {
    const lines = fixtureLines("modsec3.0.4_elastic-integrations_test-audit.log");
    expect(lines).toHaveLength(2);
    const results = lines.map(norm);
    for (const r of results) {
      if (!r.ok) throw new Error(r.reason);
      expect(r.event.format).toBe("modsec3");
      expect(r.event.clientIp).toBe("89.160.20.112");
      expect(r.event.messages).toEqual([]);
    }
    const [a, b] = results.map((r) => {
      if (!r.ok) throw new Error(r.reason);
      return r.event;
    }) as [WafEvent, WafEvent];
    expect(a.txId).toBe("165215832450.639870");
    expect(a.responseCode).toBe(400);
    expect(b.responseCode).toBe(403);
    // "Mon May  9 09:41:59 2022": the day is padded with a space.
    expect(b.timeNs).toBe(BigInt(Date.UTC(2022, 4, 9, 9, 41, 59)) * 1_000_000n);
  });

  it("rejects every ModSecurity 2.x line with a clear reason, invalid UTF-8 included", () => {
    const lines = fixtureLines("modsec2-json_EyesOfArgus_first10.jsonl");
    expect(lines).toHaveLength(10);
    for (const line of lines) {
      const r = norm(line);
      expect(r).toEqual({
        ok: false,
        reason: expect.stringContaining("unsupported format: ModSecurity 2.x"),
      });
    }
  });
});

describe("envelope", () => {
  it("normalises the reference envelope", () => {
    const r = norm(envelope({ anomaly: 65, classification: { track: "sqli", rule_id: "942100" } }));
    if (!r.ok) throw new Error(r.reason);
    expect(r.event).toMatchObject({
      format: "envelope",
      txId: "tx-1",
      clientIp: "203.0.113.9",
      anomalyScore: 65,
      classificationRuleId: "942100",
      timeNs: undefined,
      method: "POST",
      responseCode: undefined,
    });
    expect(r.event.messages).toEqual([
      { ruleId: "942100", msg: "rule 942100", message: undefined, severity: undefined },
    ]);
  });

  it("truncates a fractional anomaly score toward zero and keeps 0", () => {
    const a = norm(envelope({ anomaly: 42.9 }));
    const b = norm(envelope({ anomaly: 0 }));
    expect(a.ok && a.event.anomalyScore).toBe(42);
    expect(b.ok && b.event.anomalyScore).toBe(0);
  });
});

describe("optional parts", () => {
  it("accepts a ModSecurity v3 record with no request, response or messages", () => {
    const r = norm({ transaction: { unique_id: "u1", client_ip: "::1", time_stamp: "garbage" } });
    if (!r.ok) throw new Error(r.reason);
    expect(r.event).toMatchObject({
      txId: "u1",
      timeNs: undefined,
      responseCode: undefined,
      messages: [],
    });
  });

  it("takes the old `id` of ModSecurity v3.0.2 when unique_id is absent", () => {
    const r = norm({
      transaction: { id: "old-1", client_ip: "10.1.2.3", time_stamp: "Fri May 14 14:38:37 2021" },
    });
    if (!r.ok) throw new Error(r.reason);
    expect(r.event).toMatchObject({ format: "modsec3", txId: "old-1" });
    expect(r.event.timeNs).toBe(BigInt(Date.UTC(2021, 4, 14, 14, 38, 37)) * 1_000_000n);
  });

  it("treats null optional fields as absent", () => {
    const r = norm({
      transaction: { id: "n", client_ip: "1.2.3.4", request: null, messages: null },
      classification: null,
    });
    expect(r.ok).toBe(true);
  });
});

describe("coraza", () => {
  it("normalises a Coraza record whose unix_timestamp (ns) exceeds 2^53", () => {
    const text = corazaText({ unixNs: "1709633472123456789" });
    const r = norm(text);
    if (!r.ok) throw new Error(r.reason);
    expect(r.event).toMatchObject({
      format: "coraza",
      txId: "coraza-tx-1",
      clientIp: "198.51.100.23",
      responseCode: 403,
      method: "GET",
    });
    // Kept to the millisecond: the double rounding of the ns value is far below that.
    expect(r.event.timeNs).toBe(1709633472123000000n);
    expect(r.event.messages[0]).toMatchObject({ ruleId: "942100", severity: 2 });
  });

  it("falls back to the text timestamp when unix_timestamp is absent", () => {
    const text = corazaText({}).replace(/"unix_timestamp":\d+,/, "");
    const r = norm(text);
    expect(r.ok && r.event.timeNs).toBe(BigInt(Date.UTC(2024, 2, 5, 10, 11, 12)) * 1_000_000n);
  });

  it("drops headers, so an Authorization header never reaches an output", () => {
    const r = norm(corazaText({}));
    const seen = JSON.stringify(r.ok && r.event, (_k, v) =>
      typeof v === "bigint" ? String(v) : v,
    );
    expect(seen).toContain("coraza-tx-1");
    expect(seen).not.toContain("secret-token");
  });
});

describe("facts for the crs profile", () => {
  const first = (file: string) => {
    const line = corpusLines(file)[0];
    if (line === undefined) throw new Error(`${file} is empty`);
    const r = norm(line.toString("utf8"));
    if (!r.ok) throw new Error(r.reason);
    return r.event;
  };

  it.each([
    ["crs3-pl1.jsonl.gz", "on", 5, 1],
    ["crs3-pl1-detect.jsonl.gz", "detection-only", 5, 1],
    ["crs3-pl2.jsonl.gz", "on", undefined, 2],
    ["crs4-pl1-sample.jsonl.gz", "on", 5, 1],
    ["crs4-pl1-detect-sample.jsonl.gz", "detection-only", 5, 1],
  ])(
    "reads the engine mode, threshold and paranoia level of the first record of %s",
    (file, mode, threshold, pl) => {
      const e = first(file);
      expect(e.engineMode).toBe(mode);
      expect(e.interrupted).toBeUndefined();
      expect(e.messages.find((m) => m.threshold !== undefined)?.threshold).toBe(threshold);
      expect(e.messages[0]?.paranoiaLevel).toBe(pl);
    },
  );

  it("reads every stored CRS 3 record's threshold from 949110 and nothing else", () => {
    let with949 = 0;
    for (const line of corpusLines("crs3-pl1.jsonl.gz")) {
      const r = norm(line.toString("utf8"));
      if (!r.ok) throw new Error(r.reason);
      for (const m of r.event.messages) {
        if (m.ruleId === "949110") {
          with949++;
          expect(m.threshold).toBe(5);
        } else expect(m.threshold).toBeUndefined();
      }
    }
    expect(with949).toBe(1886);
  });

  it("reads Coraza's is_interrupted and rule_engine", () => {
    const blocked = norm(corazaText({}));
    const passed = norm(
      corazaText({ status: 200 })
        .replace('"is_interrupted":true', '"is_interrupted":false')
        .replace('"rule_engine":"On"', '"rule_engine":"DetectionOnly"'),
    );
    expect(blocked.ok && [blocked.event.interrupted, blocked.event.engineMode]).toEqual([
      true,
      "on",
    ]);
    expect(passed.ok && [passed.event.interrupted, passed.event.engineMode]).toEqual([
      false,
      "detection-only",
    ]);
    expect(blocked.ok && blocked.event.messages[0]?.paranoiaLevel).toBe(1);
  });

  it.each([
    [
      "CRS 3",
      "949110",
      "Matched \"Operator `Ge' with parameter `5' against variable `TX:ANOMALY_SCORE' (Value: `10' )",
      5,
    ],
    [
      "CRS 4",
      "949110",
      "Matched \"Operator `Ge' with parameter `7' against variable `TX:BLOCKING_INBOUND_ANOMALY_SCORE' (Value: `7' )",
      7,
    ],
    [
      "early blocking",
      "949111",
      "with parameter `10' against variable `TX:BLOCKING_INBOUND_ANOMALY_SCORE'",
      10,
    ],
    ["another rule", "942100", "with parameter `5' against variable `TX:ANOMALY_SCORE'", undefined],
    [
      "the outbound score",
      "949110",
      "with parameter `4' against variable `TX:OUTBOUND_ANOMALY_SCORE'",
      undefined,
    ],
    [
      "a threshold of 0",
      "949110",
      "with parameter `0' against variable `TX:ANOMALY_SCORE'",
      undefined,
    ],
    [
      "an absurd threshold",
      "949110",
      "with parameter `9999999' against variable `TX:ANOMALY_SCORE'",
      undefined,
    ],
    ["no match text", "949110", undefined, undefined],
    ["a number", "949110", 5, undefined],
    [
      "the fact past the scanned head",
      "949110",
      `${"x".repeat(500)} with parameter \`5' against variable \`TX:ANOMALY_SCORE'`,
      undefined,
    ],
  ])("reads the threshold of %s", (_name, id, match, expected) => {
    expect(thresholdOf(id, match)).toBe(expected);
  });

  it.each([
    [["attack-sqli", "paranoia-level/2"], 2],
    [["paranoia-level/1"], 1],
    [["paranoia-level/4", "paranoia-level/1"], 4],
    [["paranoia-level/5"], undefined],
    [["paranoia-level/12"], undefined],
    [["PARANOIA-LEVEL/2"], undefined],
    [[7, null, { a: 1 }], undefined],
    ["paranoia-level/1", undefined],
    [[...Array(64).fill("x"), "paranoia-level/1"], undefined],
  ])("reads the paranoia level of tags %j as %j", (tags, expected) => {
    expect(paranoiaLevelOf(tags)).toBe(expected);
  });

  it.each([
    [{ secrules_engine: "Enabled" }, "secrules_engine", "on"],
    [{ secrules_engine: "DetectionOnly" }, "secrules_engine", "detection-only"],
    [{ secrules_engine: "Disabled" }, "secrules_engine", "off"],
    [{ rule_engine: "On" }, "rule_engine", "on"],
    [{ rule_engine: " off " }, "rule_engine", "off"],
    [{ rule_engine: "CORERULESET/3.3" }, "rule_engine", undefined],
    [{ secrules_engine: "constructor" }, "secrules_engine", undefined],
    [{ secrules_engine: "__proto__" }, "secrules_engine", undefined],
    [{ secrules_engine: true }, "secrules_engine", undefined],
    ["Enabled", "secrules_engine", undefined],
  ] as const)("reads the engine mode of %j", (producer, field, expected) => {
    expect(engineModeOf(producer, field)).toBe(expected);
  });
});

describe("invalid records get a reason", () => {
  const tx = (t: Record<string, unknown>) => ({ transaction: t });
  it.each([
    ["not JSON", "{nope", /^not JSON/],
    ["a JSON array", "[1,2]", /not a JSON object \(got an array\)/],
    ["a JSON string", '"hello"', /not a JSON object \(got string\)/],
    ["null", "null", /got null/],
    ["empty", "   ", /empty record/],
    ["no transaction", { foo: 1 }, /no transaction object/],
    ["transaction not an object", { transaction: 5 }, /transaction is not an object/],
    ["missing id", tx({ client_ip: "1.2.3.4" }), /transaction\.id is missing/],
    ["empty id", tx({ id: "", client_ip: "1.2.3.4" }), /transaction\.id is empty/],
    ["blank id", tx({ id: "  ", client_ip: "1.2.3.4" }), /transaction\.id is empty/],
    [
      "missing unique_id (v3)",
      tx({ client_ip: "1.2.3.4", time_stamp: "x" }),
      /unique_id is missing/,
    ],
    ["missing client_ip", tx({ id: "a" }), /client_ip is missing/],
    [
      "a rule_id that cannot be a tag value",
      { ...tx({ id: "a", client_ip: "1.2.3.4" }), classification: { rule_id: "abc\\" } },
      /classification\.rule_id has control characters or ends with a backslash/,
    ],
    [
      "a rule_id with a newline",
      { ...tx({ id: "a", client_ip: "1.2.3.4" }), classification: { rule_id: "a\nb" } },
      /control characters/,
    ],
    [
      "an IPv6 zone that is not an interface name",
      tx({ id: "a", client_ip: "fe80::1%eth0\\" }),
      /client_ip is not an IPv4 or IPv6 address/,
    ],
    [
      "an absurdly long id",
      tx({ id: "x".repeat(1025), client_ip: "1.2.3.4" }),
      /transaction\.id is longer than 1024 characters/,
    ],
    [
      "an absurdly long classification.rule_id",
      { ...tx({ id: "a", client_ip: "1.2.3.4" }), classification: { rule_id: "9".repeat(257) } },
      /classification\.rule_id is longer than 256/,
    ],
    [
      "non-IP client_ip",
      tx({ id: "a", client_ip: "example.com" }),
      /client_ip is not an IPv4 or IPv6 address$/,
    ],
    ["numeric client_ip", tx({ id: "a", client_ip: 1234 }), /client_ip must be a string/],
    [
      "string anomaly_score",
      tx({ id: "a", client_ip: "1.2.3.4", anomaly_score: "5" }),
      /anomaly_score must be a finite JSON number >= 0/,
    ],
    [
      "negative anomaly_score",
      tx({ id: "a", client_ip: "1.2.3.4", anomaly_score: -1 }),
      /anomaly_score must be a finite/,
    ],
    [
      "null anomaly_score",
      tx({ id: "a", client_ip: "1.2.3.4", anomaly_score: null }),
      /anomaly_score must be a finite/,
    ],
    [
      "huge anomaly_score",
      '{"transaction":{"id":"a","client_ip":"1.2.3.4","anomaly_score":1e400}}',
      /anomaly_score/,
    ],
    ["messages not an array", tx({ id: "a", client_ip: "1.2.3.4", messages: {} }), /messages/],
    [
      "coraza id wrong type",
      { transaction: { id: {}, client_ip: "1.2.3.4" }, messages: [] },
      /invalid coraza record: transaction\.id must be a string/,
    ],
  ])("%s", (_name, input, reason) => {
    const r = norm(input);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(reason);
  });

  it("refuses a record over MAX_RECORD_BYTES, counting UTF-8 bytes", () => {
    const big = JSON.stringify(envelope({ uri: `/${"é".repeat(600)}` }));
    expect(normalise(big, { maxRecordBytes: 1000 })).toEqual({
      ok: false,
      reason: "record too large: over MAX_RECORD_BYTES (1000 bytes)",
    });
    expect(normalise(big, { maxRecordBytes: 2000 }).ok).toBe(true);
  });

  it("refuses a 10 MB string without parsing it", () => {
    const huge = `{"transaction":{"id":"a","client_ip":"1.2.3.4","x":"${"a".repeat(10 * 1024 * 1024)}"}}`;
    expect(normalise(huge, opts)).toMatchObject({ ok: false, reason: /too large/ });
  });

  it("survives deeply nested objects", () => {
    const deep = `${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`;
    const r = normalise(deep, { maxRecordBytes: 10_000_000 });
    expect(r.ok).toBe(false);
    const nestedTx = `{"transaction":{"id":"a","client_ip":"1.2.3.4","request":${'{"x":'.repeat(50_000)}1${"}".repeat(50_000)}}}`;
    expect(normalise(nestedTx, { maxRecordBytes: 10_000_000 }).ok).toBe(true);
  });

  it("ignores __proto__ keys without polluting prototypes", () => {
    const text =
      '{"__proto__":{"polluted":1},"transaction":{"__proto__":{"client_ip":"9.9.9.9"},"id":"a","client_ip":"1.2.3.4","messages":[{"__proto__":{"x":1},"details":{"ruleId":"942100"}}]}}';
    const r = normalise(text, opts);
    expect(r.ok && r.event.clientIp).toBe("1.2.3.4");
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const noIp = normalise('{"transaction":{"id":"a","__proto__":{"client_ip":"9.9.9.9"}}}', opts);
    expect(noIp).toMatchObject({ ok: false, reason: /client_ip is missing/ });
  });

  it("counts UTF-8 bytes like Buffer.byteLength", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (s) => {
        expect(utf8Length(s)).toBe(Buffer.byteLength(s, "utf8"));
      }),
    );
  });
});

describe("detectFormat", () => {
  it.each([
    [{ transaction: { id: "a" } }, "envelope"],
    [{ transaction: { unique_id: "a" } }, "modsec3"],
    [{ transaction: { id: "a", time_stamp: "x" } }, "modsec3"],
    [{ transaction: { id: "a", producer: {} } }, "modsec3"],
    [{ transaction: { id: "a" }, messages: [] }, "coraza"],
    [{ transaction: { id: "a", unix_timestamp: 1 } }, "coraza"],
  ])("%j → %s", (rec, format) => {
    expect(detectFormat(rec)).toBe(format);
  });
});

describe("hostile input (property)", () => {
  const reasonOrEvent = (text: string) => {
    const r = normalise(text, { maxRecordBytes: 4096 });
    if (r.ok) {
      expect(typeof r.event.txId).toBe("string");
      expect(r.event.txId.trim()).not.toBe("");
    } else {
      expect(typeof r.reason).toBe("string");
      expect(r.reason.length).toBeGreaterThan(0);
      expect(r.reason.length).toBeLessThanOrEqual(300);
    }
  };

  it("never throws on arbitrary strings", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 5000 }), reasonOrEvent), {
      numRuns: 2000,
    });
  });

  it("never throws on arbitrary JSON values", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => reasonOrEvent(JSON.stringify(v) ?? "")),
      { numRuns: 2000 },
    );
  });

  it("never throws on records with fields of arbitrary types in every known place", () => {
    const anything = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.constant("__proto__"),
      fc.constantFrom("1.2.3.4", "::1", "::ffff:1.2.3.4", "", "942100", "949110"),
    );
    const msg = fc.record(
      {
        message: anything,
        msg: anything,
        details: fc.record(
          { ruleId: anything, severity: anything, msg: anything },
          { requiredKeys: [] },
        ),
        data: fc.record({ id: anything, severity: anything, msg: anything }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    );
    const record = fc.record(
      {
        transaction: fc.record(
          {
            id: anything,
            unique_id: anything,
            client_ip: anything,
            anomaly_score: anything,
            time_stamp: anything,
            unix_timestamp: anything,
            request: fc.oneof(
              anything,
              fc.record({ uri: anything, method: anything }, { requiredKeys: [] }),
            ),
            response: fc.oneof(
              anything,
              fc.record({ http_code: anything, status: anything }, { requiredKeys: [] }),
            ),
            messages: fc.oneof(anything, fc.array(msg, { maxLength: 4 })),
          },
          { requiredKeys: [] },
        ),
        messages: fc.oneof(anything, fc.array(msg, { maxLength: 4 })),
        classification: fc.oneof(anything, fc.record({ rule_id: anything }, { requiredKeys: [] })),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(record, (v) => reasonOrEvent(JSON.stringify(v))),
      { numRuns: 3000 },
    );
  });
});

describe("row 8: reasons never quote the record", () => {
  const secret = "session=9f8e7d6c5b4a";
  it.each([
    [`Cookie: ${secret}`],
    [`[${JSON.stringify(secret)},]`],
    [`{"transaction": ${JSON.stringify(secret)}`],
    [`{"a":1}${secret}`],
    [`"\\${secret}"`],
    [`{${secret}}`],
    [`${secret}`],
  ])("keeps %j out of its reason", (text) => {
    const r = normalise(text, { maxRecordBytes: 1 << 20 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reason).toMatch(/^not JSON: [a-z ]+( at position \d+)?$/);
    expect(r.reason).not.toContain("9f8e");
    expect(r.reason).not.toContain("session");
  });
});

describe("row 2: a message's rule id can never break a point or cost an alert", () => {
  const withRules = (...ruleIds: string[]) => norm(envelope({ id: "row-2", rules: ruleIds }));
  it.each([
    ["ending in a backslash", "9421\\", "9421/"],
    ["with control characters", "94\n21\u0000", "94?21?"],
    ["70 KB long", "9".repeat(70_000), "9".repeat(64)],
    ["cut inside a surrogate pair", `${"1".repeat(63)}😀`, `${"1".repeat(63)}\ufffd`],
  ])("keeps a rule id %s, made safe", (_what, ruleId, expected) => {
    const r = withRules("942100", ruleId);
    if (!r.ok) throw new Error(r.reason);
    expect(r.event.messages.map((m) => m.ruleId)).toEqual(["942100", expected]);
  });
});
