import { describe, expect, it } from "vitest";
import { campaignAlert } from "../../test/alerts.ts";
import type { Alert } from "./alert.ts";
import {
  effectiveSeverity,
  headline,
  humanDuration,
  isoTime,
  primaryCategory,
  summaryNotification,
  summaryText,
  throttleKeyOf,
} from "./notification.ts";
import { oneLine, truncate } from "./text.ts";

const alert = (extra: Partial<Alert> = {}): Alert => ({
  timestamp: 1_700_000_000,
  severity: 95,
  severity_level: "critical",
  client_ip: "203.0.113.9",
  rule_id: "942100",
  categories: ["sqli"],
  uri: "/",
  method: "GET",
  tx_id: "tx-1",
  anomaly_score: 65,
  ...extra,
});

describe("throttle key", () => {
  it.each([
    [{ rule_id: "942100", categories: ["protocol", "sqli"] }, "sqli"],
    [{ rule_id: "920350", categories: ["protocol"] }, "protocol"],
    [{ rule_id: "999999", categories: [] }, "other"],
    [{ rule_id: "custom-1", categories: ["xss"] }, "xss"],
    [{ rule_id: "none", categories: [] }, "none"],
    [{ rule_id: "949110", categories: ["rce"] }, "rce"],
  ])("puts %j under category %s", (a, expected) => {
    expect(primaryCategory(a)).toBe(expected);
  });

  it("is the alert's client IP (as listed) and primary category", () => {
    expect(throttleKeyOf(alert({ client_ip: "h:0123456789abcdef" }))).toEqual({
      clientIp: "h:0123456789abcdef",
      category: "sqli",
    });
  });
});

describe("summary text", () => {
  it.each([
    [0, "0 s"],
    [45, "45 s"],
    [60, "1 min"],
    [90, "1 min 30 s"],
    [300, "5 min"],
    [3600, "1 h"],
    [5400, "90 min"],
    [7200, "2 h"],
  ])("says %i seconds as %s", (s, words) => {
    expect(humanDuration(s)).toBe(words);
  });

  it("reads like 'and 37 more from 203.0.113.9 in 5 min'", () => {
    const s = {
      clientIp: "203.0.113.9",
      category: "sqli",
      suppressed: 37,
      windowStart: 0,
      windowSeconds: 300,
      firstTxId: "a",
    };
    expect(summaryText(s)).toBe("and 37 more from 203.0.113.9 in 5 min (sqli)");
    expect(headline(summaryNotification(s))).toBe(
      "WAF alerts throttled: and 37 more from 203.0.113.9 in 5 min (sqli)",
    );
    expect(summaryNotification(s).id).toBe("summary:sqli:203.0.113.9:0");
  });
});

describe("text helpers", () => {
  it("keeps headlines on one line", () => {
    expect(headline({ kind: "alert", id: "x", alert: alert({ client_ip: "a\r\nb" }) })).toBe(
      "Critical WAF alert: sqli from a b (severity 95)",
    );
    expect(oneLine("a\u2028b\u0000c")).toBe("a b c");
  });

  it("cuts long text with a marker", () => {
    expect(truncate("abcdef", 4)).toBe("abc…");
    expect(truncate("abc", 4)).toBe("abc");
  });

  it("formats unix seconds and milliseconds as ISO 8601 UTC", () => {
    expect(isoTime(1_700_000_000)).toBe("2023-11-14T22:13:20Z");
    expect(isoTime(1_700_000_000_999, "ms")).toBe("2023-11-14T22:13:20Z");
  });
});

describe("row 9: throttle keys on the canonical client", () => {
  it.each([
    ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"],
    ["2001:DB8:1:2::1", "2001:db8:1:2:0:0:0:9"],
    ["::ffff:203.0.113.9", "203.0.113.9"],
    ["::ffff:cb00:7109", "203.0.113.9"],
  ])("puts %s and %s under one key", (a, b) => {
    expect(throttleKeyOf(alert({ client_ip: a }))).toEqual(throttleKeyOf(alert({ client_ip: b })));
  });

  it("keeps other /64s, other addresses and masked values apart, and alerts as written", () => {
    expect(throttleKeyOf(alert({ client_ip: "2001:db8:1:2::1" })).clientIp).toBe(
      "2001:db8:1:2::/64",
    );
    expect(throttleKeyOf(alert({ client_ip: "2001:db8:1:3::1" })).clientIp).toBe(
      "2001:db8:1:3::/64",
    );
    expect(throttleKeyOf(alert({ client_ip: "h:0123456789abcdef" })).clientIp).toBe(
      "h:0123456789abcdef",
    );
    const a = alert({ client_ip: "::ffff:203.0.113.9" });
    throttleKeyOf(a);
    expect(a.client_ip).toBe("::ffff:203.0.113.9");
  });
});

describe("campaign alerts", () => {
  const campaign = (severity: number) => campaignAlert(0, { severity });

  it("are throttled under their own key (client, campaign), never an event's", () => {
    expect(throttleKeyOf(campaign(30))).toEqual({ clientIp: "203.0.113.9", category: "campaign" });
    expect(throttleKeyOf(alert({ categories: ["campaign"], rule_id: "none" })).category).toBe(
      "other",
    );
  });

  it("count as at least critical for a channel's minimum severity", () => {
    expect(effectiveSeverity(campaign(30), 80)).toBe(80);
    expect(effectiveSeverity(campaign(120), 80)).toBe(120);
    expect(effectiveSeverity(alert({ severity: 30 }), 80)).toBe(30);
  });
});
