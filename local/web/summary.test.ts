import { describe, expect, it } from "vitest";
import { summarise } from "./summary.ts";

const NOW = 1_750_000_000;
const alert = (o: Record<string, unknown>) => ({
  severity: 95,
  severity_level: "critical",
  client_ip: "203.0.113.9",
  rule_id: "942100",
  categories: ["sqli"],
  listed_at: NOW - 10,
  ...o,
});

describe("summarise", () => {
  it("counts alerts of the window by level and severity bucket, zeros included", () => {
    const s = summarise(
      [
        alert({ severity: 95 }),
        alert({ severity: 120 }),
        alert({ severity: 85 }),
        alert({ severity: 70, severity_level: "high" }),
        alert({ severity: 200, listed_at: NOW - 3601 }),
      ],
      NOW,
    );
    expect(s.alerts).toBe(4);
    expect(s.byLevel).toEqual({ critical: 3, high: 1, medium: 0, low: 0 });
    expect(Object.fromEntries(s.bySeverity.map((b) => [b.label, b.count]))).toEqual({
      "0–39": 0,
      "40–59": 0,
      "60–79": 1,
      "80–89": 1,
      "90–99": 1,
      "100–119": 0,
      "120+": 1,
    });
  });

  it("ranks IPs and rules by count, then by severity, with their categories", () => {
    const s = summarise(
      [
        alert({ client_ip: "198.51.100.1", rule_id: "932160", categories: ["rce"], severity: 110 }),
        alert({ client_ip: "203.0.113.9" }),
        alert({ client_ip: "203.0.113.9", rule_id: "941100", categories: ["xss", "sqli"] }),
        alert({ client_ip: "192.0.2.1", rule_id: "941100", categories: ["xss"], severity: 90 }),
      ],
      NOW,
      3600,
      2,
    );
    expect(s.topIps).toEqual([
      { key: "203.0.113.9", count: 2, maxSeverity: 95, categories: ["sqli", "xss"] },
      { key: "198.51.100.1", count: 1, maxSeverity: 110, categories: ["rce"] },
    ]);
    expect(s.topRules.map((r) => [r.key, r.count, r.categories])).toEqual([
      ["941100", 2, ["xss"]],
      ["932160", 1, ["rce"]],
    ]);
  });

  it("survives entries with missing or hostile fields", () => {
    const s = summarise(
      [
        { listed_at: NOW },
        { listed_at: "soon" },
        alert({ client_ip: { toString: 1 }, rule_id: null, categories: "sqli", severity: "x" }),
      ],
      NOW,
    );
    expect(s.alerts).toBe(2);
    expect(s.byLevel.unknown).toBe(1);
    expect(s.topRules.map((r) => r.key)).toContain("none");
  });
});
