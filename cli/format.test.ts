import { describe, expect, it } from "vitest";
import { streamIdMs } from "../core/stream/entry.ts";
import { clean, duration, plural, table, truncate, utc } from "./format.ts";
import { describeConnectError, maskRedisUrl } from "./redis.ts";

describe("clean", () => {
  it.each([
    ["plain /login?q=1", "plain /login?q=1"],
    ["\u001b[2J\u001b]0;pwned\u0007", "\\x1b[2J\\x1b]0;pwned\\x07"],
    ["a\nb\rc\td", "a\\nb\\rc\\td"],
    ["evil\u202etxt.exe", "evil\\u202etxt.exe"],
    ["\u009b31m", "\\x9b31m"],
    ["<script>é</script>", "<script>é</script>"],
  ])("makes %j inert for a terminal", (input, expected) => {
    expect(clean(input)).toBe(expected);
  });
});

describe("table", () => {
  it("pads every column but the last to its widest cell", () => {
    expect(table(["A", "BB", "C"], [["xxx", "y", "long last cell"]])).toBe(
      "A    BB  C\nxxx  y   long last cell",
    );
  });
});

describe("formatting", () => {
  it.each([
    [12, "12 ms"],
    [42_400, "42 s"],
    [600_000, "10 min"],
    [7_500_000, "2 h 5 min"],
    [3 * 86_400_000, "3 d"],
  ])("duration(%d) is %j", (ms, text) => {
    expect(duration(ms)).toBe(text);
  });

  it("counts with separators and plurals", () => {
    expect(plural(1, "record")).toBe("1 record");
    expect(plural(12_345, "entry", "entries")).toBe("12,345 entries");
  });

  it("truncates by code point with an ellipsis", () => {
    expect(truncate("abcdef", 4)).toBe("abc…");
    expect(truncate("😀😀😀", 3)).toBe("😀😀😀");
  });

  it("prints unix seconds in UTC and reads stream IDs", () => {
    expect(utc(1_621_003_117)).toBe("2021-05-14 14:38:37Z");
    expect(utc(0)).toBe("-");
    expect(streamIdMs("1718000000000-3")).toBe(1_718_000_000_000);
    expect(streamIdMs("nope")).toBeUndefined();
  });
});

describe("Redis URLs in messages", () => {
  it.each([
    ["redis://:s3cret@cache:6379", "redis://:***@cache:6379"],
    ["rediss://default:s3cret@cache.example:6380", "rediss://default:***@cache.example:6380"],
    ["redis://tokenonly@cache:6379", "redis://***@cache:6379"],
    ["redis://localhost:6379", "redis://localhost:6379"],
  ])("masks %s", (url, shown) => {
    expect(maskRedisUrl(url)).toBe(shown);
  });

  it("explains socket and auth errors", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), {
      code: "ECONNREFUSED",
    });
    expect(describeConnectError(refused)).toMatch(/^connection refused/);
    expect(describeConnectError(new Error("WRONGPASS invalid username-password pair"))).toMatch(
      /^authentication failed/,
    );
    expect(describeConnectError(new Error('Unknown RESP type 72 "H"'))).toMatch(
      /does not speak Redis/,
    );
  });
});
