import { describe, expect, it } from "vitest";
import { GlobError, hasMagic, segmentMatcher, splitPattern } from "./glob.ts";

describe("segmentMatcher", () => {
  it.each([
    ["modsec_audit.log*", "modsec_audit.log", true],
    ["modsec_audit.log*", "modsec_audit.log.1", true],
    ["modsec_audit.log*", "modsec_audit.lo", false],
    ["audit.log.?", "audit.log.7", true],
    ["audit.log.?", "audit.log.10", false],
    ["audit.[0-9]", "audit.5", true],
    ["audit.[!0-9]", "audit.5", false],
    ["audit.[^0-9]", "audit.x", true],
    ["*.log", ".hidden.log", false],
    [".*.log", ".hidden.log", true],
    ["a\\*b", "a*b", true],
    ["a\\*b", "axb", false],
    ["(x)+.log", "(x)+.log", true],
  ])("%s matches %s: %s", (pattern, name, expected) => {
    expect(segmentMatcher(pattern)(name)).toBe(expected);
  });

  it("refuses ** and an unclosed bracket instead of reading them literally", () => {
    expect(() => segmentMatcher("**")).toThrow(GlobError);
    expect(() => segmentMatcher("a[b")).toThrow(/unclosed/);
  });
});

describe("splitPattern", () => {
  it("starts from the longest literal directory", () => {
    expect(splitPattern("/var/log/modsec_audit.log*")).toEqual({
      root: "/var/log",
      segments: ["modsec_audit.log*"],
    });
    expect(splitPattern("/var/log/*/audit.log")).toEqual({
      root: "/var/log",
      segments: ["*", "audit.log"],
    });
    expect(splitPattern("logs/a*.log")).toEqual({ root: "logs", segments: ["a*.log"] });
    expect(splitPattern("*.log")).toEqual({ root: ".", segments: ["*.log"] });
    expect(splitPattern("/var/log/audit.log")).toEqual({
      root: "/var/log/audit.log",
      segments: [],
    });
  });
  it("tells wildcards from escaped ones", () => {
    expect(hasMagic("a*")).toBe(true);
    expect(hasMagic("a\\*")).toBe(false);
    expect(hasMagic("plain.log")).toBe(false);
  });
});
