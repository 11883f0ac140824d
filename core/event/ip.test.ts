import { describe, expect, it } from "vitest";
import { formatIp, InvalidIpEntryError, IpSet, isIp, parseIp, truncateIp } from "./ip.ts";

describe("parseIp", () => {
  it.each([
    ["203.0.113.9", 4],
    ["0.0.0.0", 4],
    ["255.255.255.255", 4],
    ["::1", 6],
    ["::", 6],
    ["2001:db8::1", 6],
    ["2001:DB8:0:0:8:800:200C:417A", 6],
    ["fe80::1%eth0", 6],
    ["::ffff:203.0.113.9", 4],
    ["::FFFF:10.0.0.1", 4],
    ["64:ff9b::192.0.2.33", 6],
  ])("accepts %s as IPv%i", (text, version) => {
    expect(parseIp(text)?.version).toBe(version);
  });

  it.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "1.2.3.4 ",
    " 1.2.3.4",
    "1.2.3.-1",
    "::1::",
    "1:2:3:4:5:6:7:8:9",
    "12345::",
    "g::1",
    "localhost",
    "1.2.3.4/24",
    "fe80::1%",
    "x".repeat(100),
  ])("rejects %j", (text) => {
    expect(isIp(text)).toBe(false);
  });

  it("maps IPv4-mapped IPv6 to the same value as the IPv4 address", () => {
    expect(parseIp("::ffff:203.0.113.9")).toEqual(parseIp("203.0.113.9"));
  });
});

describe("formatIp and truncateIp", () => {
  it.each([
    ["203.0.113.9", 24, "203.0.113.0"],
    ["2001:db8:1234:5678::9", 48, "2001:db8:1234::"],
    ["2001:0db8:0000:0000:0001:0000:0000:0001", 128, "2001:db8::1:0:0:1"],
    ["::1", 128, "::1"],
  ])("%s /%i → %s", (ip, bits, expected) => {
    const p = parseIp(ip);
    if (!p) throw new Error("unparsed");
    expect(formatIp(truncateIp(p, bits))).toBe(expected);
  });
});

describe("IpSet", () => {
  const set = IpSet.parse([
    "198.51.100.7",
    "203.0.113.0/24",
    "10.0.0.0/8",
    "2001:db8::/32",
    "2001:db8:ffff::5",
    "# a comment",
    "",
  ]);

  it.each([
    ["198.51.100.7", true],
    ["198.51.100.8", false],
    ["203.0.113.255", true],
    ["203.0.114.0", false],
    ["10.255.0.1", true],
    ["::ffff:203.0.113.9", true],
    ["2001:db8:abcd::1", true],
    ["2001:db9::1", false],
    ["2001:db8:ffff::5", true],
    ["not-an-ip", false],
  ])("%s → %s", (ip, expected) => {
    expect(set.has(ip)).toBe(expected);
  });

  it("treats a mapped IPv6 CIDR as the IPv4 network", () => {
    expect(IpSet.parse(["::ffff:192.0.2.0/120"]).has("192.0.2.77")).toBe(true);
  });

  it("counts each network once", () => {
    expect(IpSet.parse(["1.2.3.4", "1.2.3.4/32", "1.2.3.4"]).size).toBe(1);
  });

  it.each(["1.2.3.4/33", "2001:db8::/129", "1.2.3/24", "abc", "1.2.3.4/x"])(
    "refuses the entry %j with a named error",
    (entry) => {
      expect(() => IpSet.parse([entry])).toThrow(InvalidIpEntryError);
    },
  );
});
