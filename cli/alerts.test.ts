import { describe, expect, it } from "vitest";
import { alertJson, alertTable, matches, parseAlert } from "./alerts.ts";
import { dlqDetails, dlqTable } from "./dlq.ts";

const a = {
  timestamp: 1_621_003_117,
  severity: 95,
  severity_level: "critical",
  client_ip: "203.0.113.9",
  rule_id: "942100",
  categories: ["sqli"],
  uri: "/x?\u001b]0;owned\u0007<script>alert(1)</script>",
  method: "GET",
  tx_id: "tx-1",
  anomaly_score: 65,
  listed_at: 1_621_003_118,
};

describe("alert output", () => {
  it("prints a table whose cells cannot drive the terminal", () => {
    const t = alertTable([a]);
    expect(t.split("\n")[0]).toMatch(/^TIME \(UTC\)\s+LEVEL\s+SEV\s+CLIENT IP\s+RULE/);
    expect(t).toContain("2021-05-14 14:38:37Z  critical  95");
    expect(t).toContain("\\x1b]0;owned\\x07<script>");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence.
    expect(t).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
  });

  it("prints JSON lines with control characters escaped", () => {
    expect(alertJson(a)).toContain("\\u001b]0;owned\\u0007");
    expect(JSON.parse(alertJson(a))).toEqual(a);
  });

  it("filters by level, IP and rule", () => {
    expect(matches(a, { levels: ["critical"] })).toBe(true);
    expect(matches(a, { levels: ["high", "medium"] })).toBe(false);
    expect(matches(a, { levels: [], ip: "203.0.113.9", rule: "942100" })).toBe(true);
    expect(matches(a, { levels: [], rule: "941100" })).toBe(false);
  });

  it("reads only JSON objects as alerts", () => {
    expect(parseAlert("[1]")).toBeUndefined();
    expect(parseAlert("{oops")).toBeUndefined();
    expect(parseAlert('{"tx_id":"t"}')).toEqual({ tx_id: "t" });
  });
});

describe("DLQ output", () => {
  const entry = {
    id: "1718000000000-0",
    fields: {
      reason: "not JSON: Unexpected token",
      attempts: "1",
      entry_id: "1717999999999-0",
      stream: "waf-realtime",
      group: "realtime-processor",
      consumer: "reader-1",
      failed_at: "2024-06-10T06:13:20.123Z",
      event: "{not json\u001b[31m",
    },
  };

  it("lists entries with a one-line record preview", () => {
    const t = dlqTable([entry], "event");
    expect(t).toContain("1718000000000-0  2024-06-10 06:13:20Z  1      1717999999999-0");
    expect(t).toContain("{not json\\x1b[31m");
  });

  it("shows every field and the whole record", () => {
    const d = dlqDetails(entry, "event");
    expect(d.split("\n").map((l) => l.split(/\s+/)[0])).toEqual([
      "id",
      "reason",
      "attempts",
      "failed_at",
      "entry_id",
      "stream",
      "group",
      "consumer",
      "event",
      "{not",
    ]);
    expect(dlqDetails({ id: "1-0", fields: { reason: "x" } }, "event")).toContain("(no record");
  });
});
