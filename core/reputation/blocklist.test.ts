import { describe, expect, it } from "vitest";
import { canonicalEntry, parseBlocklist } from "./blocklist.ts";
import { offenderEntry, offendersKey } from "./offenders.ts";

describe("canonicalEntry", () => {
  it.each([
    ["203.0.113.9", "203.0.113.9"],
    [" 203.0.113.9 ", "203.0.113.9"],
    ["203.0.113.9/24", "203.0.113.0/24"],
    ["203.0.113.9/32", "203.0.113.9"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["2001:DB8:0:0::1", "2001:db8::1"],
    ["2001:db8::/32", "2001:db8::/32"],
    ["2001:db8::1/128", "2001:db8::1"],
    ["::ffff:203.0.113.9", "203.0.113.9"],
    ["::ffff:10.0.0.0/104", "10.0.0.0/8"],
  ])("%s → %s", (raw, canonical) => {
    expect(canonicalEntry(raw)).toBe(canonical);
  });

  it.each([
    "",
    "evil.example",
    "203.0.113.256",
    "10.0.0.0/33",
    "10.0.0.0/",
    "10.0.0.0/a",
    "::ffff:10.0.0.0/95",
    "01.2.3.4",
  ])("refuses %j", (raw) => {
    expect(canonicalEntry(raw)).toBeUndefined();
  });
});

describe("parseBlocklist", () => {
  it("reads FireHOL, Spamhaus DROP and CSV-ish lines, skipping comments and blanks", () => {
    const text = [
      "# FireHOL level1",
      "; Spamhaus DROP List",
      "",
      "1.10.16.0/20 ; SBL256894",
      "203.0.113.9   # scanner seen 2024-05-01",
      "198.51.100.7,brute force",
      "2001:db8::/32 // lab",
      "203.0.113.9",
      "\t192.0.2.0/24\r",
    ].join("\n");
    expect(parseBlocklist(text)).toEqual({
      entries: ["1.10.16.0/20", "203.0.113.9", "198.51.100.7", "2001:db8::/32", "192.0.2.0/24"],
      invalid: [],
    });
  });

  it("reports invalid lines with their 1-based numbers instead of loading them", () => {
    expect(parseBlocklist("203.0.113.9\nevil.example\n10.0.0.0/40 # bad\n")).toEqual({
      entries: ["203.0.113.9"],
      invalid: [
        { line: 2, text: "evil.example" },
        { line: 3, text: "10.0.0.0/40 # bad" },
      ],
    });
  });
});

describe("repeat-offender entries", () => {
  it.each([
    ["203.0.113.9", "off", "203.0.113.9"],
    ["::ffff:203.0.113.9", "off", "203.0.113.9"],
    ["203.0.113.0", "truncate", "203.0.113.0/24"],
    ["2001:db8:1::", "truncate", "2001:db8:1::/48"],
    ["h:0123456789abcdef", "hash", "h:0123456789abcdef"],
    ["invalid", "truncate", undefined],
    ["203.0.113.9", "hash", undefined],
    ["h:0123456789abcdef", "off", undefined],
  ] as const)("%s under IP_MASKING=%s counts as %s", (ip, masking, entry) => {
    expect(offenderEntry(ip, masking)).toBe(entry);
  });

  it("live beside the threat-intelligence set, never inside it", () => {
    expect(offendersKey("waf:threat-intel")).toBe("waf:threat-intel:offenders");
    expect(offendersKey(undefined)).toBe("waf:reputation:offenders");
  });
});
