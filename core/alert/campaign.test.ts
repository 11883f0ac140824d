import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { envelope } from "../../test/fixtures/records.ts";
import { normalise } from "../event/normalise.ts";
import type { PrivacyConfig } from "../privacy/privacy.ts";
import { Reputation } from "../scoring/reputation.ts";
import { DEFAULT_SCORING, scoreEvent } from "../scoring/score.ts";
import { toAlert } from "./alert.ts";
import {
  applyCampaignEvents,
  type CampaignEvent,
  type CampaignSettings,
  campaignClientKey,
  campaignEventOf,
  campaignTxId,
  emptyCampaignState,
  groupCampaignEvents,
  MAX_CAMPAIGN_CATEGORIES,
  MAX_CAMPAIGN_RULES,
  toCampaignAlert,
  windowStartOf,
} from "./campaign.ts";

const OFF: PrivacyConfig = { ipMasking: "off", ipHashKey: undefined };
const TRUNCATE: PrivacyConfig = { ipMasking: "truncate", ipHashKey: undefined };
const HASH: PrivacyConfig = { ipMasking: "hash", ipHashKey: "k" };
const SETTINGS: CampaignSettings = { windowSeconds: 300, minEvents: 20 };

let n = 0;
const ev = (over: Partial<CampaignEvent> = {}): CampaignEvent => ({
  txId: `tx-${++n}`,
  clientIp: "203.0.113.9",
  severity: 30,
  anomalyScore: 5,
  blocked: true,
  categories: ["942"],
  rules: ["942100"],
  ...over,
});

describe("the campaign client key", () => {
  it.each<[string, PrivacyConfig, string | undefined]>([
    ["203.0.113.9", OFF, "203.0.113.9"],
    ["::ffff:203.0.113.9", OFF, "203.0.113.9"],
    ["2001:db8:1:2:aaaa::1", OFF, "2001:db8:1:2::/64"],
    ["2001:0db8:0001:0002:ffff:ffff:ffff:ffff", OFF, "2001:db8:1:2::/64"],
    ["2001:db8:1:3::1", OFF, "2001:db8:1:3::/64"],
    ["203.0.113.9", TRUNCATE, "203.0.113.0"],
    ["2001:db8:1:2::1", TRUNCATE, "2001:db8:1::"],
    ["not an ip", OFF, undefined],
    ["", OFF, undefined],
  ])("%s with masking %o is %s", (ip, privacy, key) => {
    expect(campaignClientKey(ip, privacy)).toBe(key);
  });

  it("hashes the canonical address: a mapped IPv4 and its IPv4, two addresses of one /64", () => {
    const k = campaignClientKey("203.0.113.9", HASH);
    expect(k).toMatch(/^h:[0-9a-f]{16}$/);
    expect(campaignClientKey("::ffff:203.0.113.9", HASH)).toBe(k);
    expect(campaignClientKey("2001:db8::1", HASH)).toBe(campaignClientKey("2001:db8::2", HASH));
    expect(campaignClientKey("2001:db8::1", HASH)).not.toBe(
      campaignClientKey("2001:db8:0:1::1", HASH),
    );
  });
});

describe("the window", () => {
  it.each([
    [1_700_000_000_000, 300, 1_699_999_800],
    [1_700_000_099_999, 300, 1_699_999_800],
    [1_700_000_100_000, 300, 1_700_000_100],
    [1_700_000_100_000, 60, 1_700_000_100],
    [1_700_000_159_000, 60, 1_700_000_100],
    [0, 300, 0],
  ])("holding %d ms (window %d s) starts at %d", (nowMs, w, start) => {
    expect(windowStartOf(nowMs, w)).toBe(start);
    expect(start % w).toBe(0);
  });

  it("names the alert campaign:<client>:<window_start>", () => {
    expect(campaignTxId("2001:db8:1:2::/64", 1_700_000_100)).toBe(
      "campaign:2001:db8:1:2::/64:1700000100",
    );
  });
});

describe("what an event contributes", () => {
  const scored = (ip: string, rules: Array<string | { id: string }>, allowlist: string[] = []) => {
    const r = normalise(JSON.stringify(envelope({ ip, anomaly: 65, rules })), {
      maxRecordBytes: 1 << 20,
    });
    if (!r.ok) throw new Error(r.reason);
    return campaignEventOf(
      r.event,
      scoreEvent(r.event, DEFAULT_SCORING, Reputation.fromLists({ allowlist })),
    );
  };

  it("carries the transaction, address as written, severity, categories and numeric rules", () => {
    expect(scored("::ffff:203.0.113.9", ["942100", "941100", "949110", "x1", "942100"])).toEqual({
      txId: "tx-1",
      clientIp: "::ffff:203.0.113.9",
      severity: 120,
      anomalyScore: 65,
      blocked: false,
      categories: ["942", "941"],
      rules: ["942100", "941100"],
    });
  });

  it("is nothing for an allowlisted client", () => {
    expect(scored("203.0.113.9", ["942100"], ["203.0.113.0/24"])).toBeUndefined();
  });

  it("keeps at most 32 rules of one event", () => {
    const rules = Array.from({ length: 100 }, (_, i) => String(100000 + i));
    expect(scored("203.0.113.9", rules)?.rules).toHaveLength(32);
  });
});

describe("the trigger", () => {
  it("raises once when the client reaches CAMPAIGN_MIN_EVENTS events, never again", () => {
    const s = emptyCampaignState();
    const raised: number[] = [];
    for (let i = 1; i <= 50; i++) {
      if (applyCampaignEvents(s, [ev()], SETTINGS).raise) raised.push(i);
    }
    expect(raised).toEqual([20]);
    expect(s.events).toBe(20);
  });

  it("counts each transaction once", () => {
    const s = emptyCampaignState();
    const one = ev();
    for (let i = 0; i < 40; i++) expect(applyCampaignEvents(s, [one], SETTINGS).raise).toBe(false);
    expect(s.events).toBe(1);
  });

  it.each<[string, string[][], boolean]>([
    ["three attack categories", [["942"], ["941"], ["932"]], true],
    ["three in one event", [["930", "933", "944"]], true],
    ["two attack categories and protocol", [["942"], ["941"], ["920"]], false],
    ["scanner, method, protocol, leakage", [["913"], ["911"], ["920"], ["951"]], false],
    ["934 and 943 are attack categories", [["934"], ["943"], ["931"]], true],
    ["the same category three times", [["942"], ["942"], ["942"]], false],
  ])("with %s: %s", (_name, categories, raise) => {
    const s = emptyCampaignState();
    const results = categories.map(
      (c) => applyCampaignEvents(s, [ev({ categories: c })], SETTINGS).raise,
    );
    expect(results.filter(Boolean)).toHaveLength(raise ? 1 : 0);
  });

  it("raises once for a batch that crosses the trigger in its middle", () => {
    const s = emptyCampaignState();
    applyCampaignEvents(
      s,
      Array.from({ length: 15 }, () => ev()),
      SETTINGS,
    );
    expect(
      applyCampaignEvents(
        s,
        Array.from({ length: 15 }, () => ev()),
        SETTINGS,
      ).raise,
    ).toBe(true);
    expect(s.events).toBe(20);
  });

  it("is off entirely with CAMPAIGN_MIN_EVENTS=0, the categories trigger too", () => {
    const s = emptyCampaignState();
    const off = { ...SETTINGS, minEvents: 0 };
    const events = [["942"], ["941"], ["932"], ["930"]].map((c) => ev({ categories: c }));
    expect(applyCampaignEvents(s, events, off).raise).toBe(false);
    expect(s.fired).toBe(false);
  });

  it("raises again on a redelivery of a counted transaction (its first attempt may have been lost)", () => {
    const s = emptyCampaignState();
    const events = Array.from({ length: 20 }, () => ev());
    expect(applyCampaignEvents(s, events, SETTINGS).raise).toBe(true);
    expect(applyCampaignEvents(s, [ev()], SETTINGS).raise).toBe(false);
    expect(applyCampaignEvents(s, [events[19] as CampaignEvent], SETTINGS).raise).toBe(true);
    // The figures are those of the moment it fired, whatever came after.
    expect(s.events).toBe(20);
  });

  it("raises at most once per window whatever the batches, without redeliveries (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.constantFrom("942", "941", "932", "920", "913"), { maxLength: 3 }), {
          maxLength: 60,
        }),
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 0, max: 30 }),
        (categories, cuts, minEvents) => {
          const settings = { ...SETTINGS, minEvents };
          const s = emptyCampaignState();
          const events = categories.map((c) => ev({ categories: c }));
          let raised = 0;
          let i = 0;
          let k = 0;
          while (i < events.length) {
            const size = cuts[k++ % cuts.length] as number;
            if (applyCampaignEvents(s, events.slice(i, i + size), settings).raise) raised++;
            i += size;
          }
          const attack = new Set(categories.flat().filter((c) => c >= "930" && c <= "944")).size;
          const expected = minEvents > 0 && (events.length >= minEvents || attack >= 3) ? 1 : 0;
          expect(raised).toBe(expected);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("bounds the categories and rules a window keeps", () => {
    const s = emptyCampaignState();
    const settings = { ...SETTINGS, minEvents: 1000 };
    for (let i = 0; i < 100; i++) {
      applyCampaignEvents(
        s,
        [ev({ categories: [String(100 + i)], rules: [String(200000 + i), "942100"] })],
        settings,
      );
    }
    expect(s.categories).toHaveLength(MAX_CAMPAIGN_CATEGORIES);
    expect(s.ruleCounts.size).toBe(MAX_CAMPAIGN_RULES);
    expect(s.ruleCounts.get("942100")).toBe(100);
  });
});

describe("the campaign alert", () => {
  const fired = () => {
    const s = emptyCampaignState();
    const events = [
      ev({
        clientIp: "2001:db8:1:2::7",
        severity: 40,
        anomalyScore: 10,
        rules: ["942100", "942200"],
      }),
      ev({
        clientIp: "2001:db8:1:2::8",
        severity: 85,
        anomalyScore: 25,
        blocked: false,
        categories: ["941"],
        rules: ["941100"],
      }),
      ev({
        clientIp: "2001:db8:1:2::7",
        categories: ["932", "920"],
        rules: ["932100", "942100", "920350"],
      }),
    ];
    expect(applyCampaignEvents(s, events, SETTINGS).raise).toBe(true);
    return s;
  };

  it("has the event alert's fields plus the window's figures", () => {
    const a = toCampaignAlert(
      fired(),
      {
        clientKey: "2001:db8:1:2::/64",
        windowStart: 1_700_000_100,
        windowSeconds: 300,
        nowMs: 1_700_000_123_456,
      },
      OFF,
    );
    expect(a).toEqual({
      kind: "campaign",
      timestamp: 1_700_000_123,
      severity: 85,
      severity_level: "critical",
      client_ip: "2001:db8:1:2::7",
      rule_id: "942100",
      categories: ["sqli", "xss", "rce", "protocol"],
      uri: "",
      method: "",
      tx_id: "campaign:2001:db8:1:2::/64:1700000100",
      anomaly_score: 25,
      window_start: 1_700_000_100,
      window_seconds: 300,
      events: 3,
      blocked: 2,
      top_rules: [
        { rule_id: "942100", events: 2 },
        { rule_id: "920350", events: 1 },
        { rule_id: "932100", events: 1 },
        { rule_id: "941100", events: 1 },
        { rule_id: "942200", events: 1 },
      ],
    });
    // It is an Alert: everything that handles event alerts can carry it.
    const keys = Object.keys(a);
    const n2 = normalise(JSON.stringify(envelope({ anomaly: 65 })), { maxRecordBytes: 1 << 20 });
    if (!n2.ok) throw new Error(n2.reason);
    const eventAlert = toAlert(
      n2.event,
      scoreEvent(n2.event, DEFAULT_SCORING, Reputation.fromLists({})),
      undefined,
      OFF,
    );
    expect(eventAlert.kind).toBe("event");
    for (const k of Object.keys(eventAlert)) expect(keys).toContain(k);
  });

  it("masks the client address like every alert", () => {
    const key = campaignClientKey("2001:db8:1:2::7", TRUNCATE) as string;
    const a = toCampaignAlert(
      fired(),
      { clientKey: key, windowStart: 0, windowSeconds: 300, nowMs: 0 },
      TRUNCATE,
    );
    expect(a.client_ip).toBe("2001:db8:1::");
    expect(a.tx_id).toBe("campaign:2001:db8:1:::0");
  });

  it("says none as rule_id when no rule counted", () => {
    const s = emptyCampaignState();
    applyCampaignEvents(
      s,
      Array.from({ length: 20 }, () => ev({ rules: [] })),
      SETTINGS,
    );
    const a = toCampaignAlert(
      s,
      { clientKey: "x", windowStart: 0, windowSeconds: 300, nowMs: 0 },
      OFF,
    );
    expect(a.rule_id).toBe("none");
    expect(a.top_rules).toEqual([]);
  });
});

describe("grouping a batch", () => {
  it("groups by client key and window, in first-seen order", () => {
    const t = 1_700_000_100_000;
    const groups = groupCampaignEvents(
      [
        { event: ev({ clientIp: "203.0.113.9" }), nowMs: t },
        { event: ev({ clientIp: "2001:db8::1" }), nowMs: t },
        { event: ev({ clientIp: "::ffff:203.0.113.9" }), nowMs: t + 1000 },
        { event: ev({ clientIp: "2001:db8::2" }), nowMs: t },
        { event: ev({ clientIp: "203.0.113.9" }), nowMs: t + 300_000 },
        { event: ev({ clientIp: "bogus" }), nowMs: t },
      ],
      SETTINGS,
      OFF,
    );
    expect(groups.map((g) => [g.clientKey, g.windowStart, g.events.length])).toEqual([
      ["203.0.113.9", 1_700_000_100, 2],
      ["2001:db8::/64", 1_700_000_100, 2],
      ["203.0.113.9", 1_700_000_400, 1],
    ]);
  });

  it("is empty when campaigns are off", () => {
    expect(
      groupCampaignEvents([{ event: ev(), nowMs: 0 }], { ...SETTINGS, minEvents: 0 }, OFF),
    ).toEqual([]);
  });
});
