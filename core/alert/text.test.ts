/**
 * The text primitives every sink starts from, and the alert side's key names: well-formed,
 * bounded at a code point, identifiers never merged, key parts bounded and unambiguous.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { alertKeys, keyPart, offendersKey } from "./keys.ts";
import { boundId, boundText, isWellFormed, jsonBytes, truncate, wellFormed } from "./text.ts";

const LONE = "\uD800";
const PAIR = "😀";

describe("text", () => {
  it("replaces lone surrogates and keeps pairs", () => {
    expect(wellFormed(`a${LONE}b${PAIR}`)).toBe(`a\uFFFDb${PAIR}`);
    expect(isWellFormed(`a${LONE}`)).toBe(false);
  });

  it("truncates without splitting a surrogate pair", () => {
    expect(truncate("abcdef", 4)).toBe("abc…");
    expect(truncate(`ab${PAIR}`, 3)).toBe("ab…");
    expect(truncate(`a${PAIR}cd`, 3)).toBe("a…");
    expect(truncate("abc", 3)).toBe("abc");
  });

  it("measures the JSON form of text in UTF-8 bytes", () => {
    for (const s of ["", "a", 'q"\\', "\n\u0001", "é", "€", PAIR, `${LONE}x`]) {
      expect(jsonBytes(s)).toBe(Buffer.byteLength(JSON.stringify(s)) - 2);
    }
  });

  it("bounds text by the bytes of its JSON form, cut at a code point, idempotently", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 300 }), fc.nat(200), (s, max) => {
        const b = boundText(s, max + 3);
        expect(isWellFormed(b)).toBe(true);
        expect(jsonBytes(b)).toBeLessThanOrEqual(max + 3);
        expect(boundText(b, max + 3)).toBe(b);
      }),
      { numRuns: 500 },
    );
  });

  it("bounds identifiers without merging two, idempotently", () => {
    const long = "x".repeat(600);
    const a = boundId(`${long}a`, 256);
    const b = boundId(`${long}b`, 256);
    expect(a).not.toBe(b);
    expect(jsonBytes(a)).toBeLessThanOrEqual(256);
    expect(boundId(a, 256)).toBe(a);
    expect(boundId(`t${LONE}`, 256)).not.toBe(boundId("t\uDC00", 256));
    expect(isWellFormed(boundId(`t${LONE}`, 256))).toBe(true);
    expect(boundId("tx-1", 256)).toBe("tx-1");
  });
});

describe("alert keys", () => {
  const k = alertKeys("waf-alerts");

  it("keeps today's names for ordinary values", () => {
    expect(k.list).toBe("waf-alerts");
    expect(k.seen("175310970922.478872")).toBe("waf-alerts:seen:175310970922.478872");
    expect(k.progress("tx-1")).toBe("waf-alerts:notified:tx-1");
    expect(k.throttle("slack", "sqli", "2001:db8::/64")).toBe(
      "waf-alerts:throttle:slack:sqli:2001:db8::/64",
    );
    expect(k.throttleDue("slack")).toBe("waf-alerts:throttle:slack:due");
    expect(k.stats(28_333_333)).toBe("waf-alerts:stats:28333333");
    expect(k.campaign("203.0.113.9", 1_700_000_100)).toBe(
      "waf-alerts:campaign:{203.0.113.9:1700000100}",
    );
    expect(k.offenders).toBe("waf:reputation:offenders");
    expect(alertKeys("a", "waf:ti").offenders).toBe(offendersKey("waf:ti"));
    expect(k.offenderWindow("203.0.113.9")).toBe("waf:reputation:offenders:window:203.0.113.9");
  });

  it("hashes a request's value that is long, not well-formed or could be read as structure", () => {
    const hashed = /^#[0-9a-f]{64}$/;
    expect(keyPart("x".repeat(129))).toMatch(hashed);
    expect(keyPart(`t${LONE}`)).toMatch(hashed);
    expect(keyPart("a\r\nb")).toMatch(hashed);
    expect(keyPart("#literal")).toMatch(hashed);
    expect(keyPart("sqli:203.0.113.9")).toMatch(hashed);
    expect(keyPart("campaign:203.0.113.9:0", { colon: true })).toBe("campaign:203.0.113.9:0");
    // Two values, two keys, whatever they share.
    expect(k.seen(`${"p".repeat(600)}1`)).not.toBe(k.seen(`${"p".repeat(600)}2`));
    expect(k.seen("x".repeat(600)).length).toBeLessThan(100);
  });
});
