import { describe, expect, it } from "vitest";
import { envelope } from "../../test/fixtures/records.ts";
import { toAlert } from "../alert/alert.ts";
import { normalise } from "../event/normalise.ts";
import { Reputation } from "../scoring/reputation.ts";
import { DEFAULT_SCORING, scoreEvent } from "../scoring/score.ts";
import { maskIp, REDACTED, redactUri } from "./privacy.ts";

describe("IP masking", () => {
  const truncate = { ipMasking: "truncate" as const, ipHashKey: undefined };
  const hash = { ipMasking: "hash" as const, ipHashKey: "k1" };

  it.each([
    ["203.0.113.9", "203.0.113.0"],
    ["::ffff:203.0.113.9", "203.0.113.0"],
    ["2001:db8:abcd:12::1", "2001:db8:abcd::"],
  ])("truncate %s → %s", (ip, out) => {
    expect(maskIp(ip, truncate)).toBe(out);
  });

  it("leaves the address alone when off", () => {
    expect(maskIp("203.0.113.9", { ipMasking: "off", ipHashKey: undefined })).toBe("203.0.113.9");
  });

  it("hashes with the key: stable, keyed, one value for a mapped and a plain IPv4", () => {
    const a = maskIp("203.0.113.9", hash);
    expect(a).toMatch(/^h:[0-9a-f]{16}$/);
    expect(maskIp("203.0.113.9", hash)).toBe(a);
    expect(maskIp("::ffff:203.0.113.9", hash)).toBe(a);
    expect(maskIp("203.0.113.9", { ...hash, ipHashKey: "k2" })).not.toBe(a);
    expect(a).not.toContain("203");
  });

  it("refuses hash without a key", () => {
    expect(() => maskIp("1.2.3.4", { ipMasking: "hash", ipHashKey: undefined })).toThrow(
      /IP_HASH_KEY/,
    );
  });
});

describe("secret removal", () => {
  it.each([
    ["/login?user=bob&password=hunter2", `/login?user=bob&password=${REDACTED}`],
    ["/cb?code=abc&state=1", `/cb?code=${REDACTED}&state=1`],
    [
      "/api?api_key=K&access_token=T&x=1#frag",
      `/api?api_key=${REDACTED}&access_token=${REDACTED}&x=1#frag`,
    ],
    [
      "/s?X-Amz-Signature=abc&X-Amz-Credential=c",
      `/s?X-Amz-Signature=${REDACTED}&X-Amz-Credential=${REDACTED}`,
    ],
    ["/p?PHPSESSID=1&q=%3Cscript%3E", `/p?PHPSESSID=${REDACTED}&q=%3Cscript%3E`],
    ["https://user:pw@example.com/x", `https://${REDACTED}@example.com/x`],
    [
      "/?q=%3Cscript%3Ealert(%27xss%27)%3C/script%3E",
      "/?q=%3Cscript%3Ealert(%27xss%27)%3C/script%3E",
    ],
    ["/plain", "/plain"],
    [undefined, ""],
  ])("%s", (uri, out) => {
    expect(redactUri(uri)).toBe(out);
  });

  it("cuts very long URIs", () => {
    expect(redactUri(`/${"a".repeat(5000)}`).length).toBeLessThanOrEqual(2049);
  });
});

describe("alert object", () => {
  it("has the reference §4 fields, masked IP and redacted URI", () => {
    const n = normalise(
      JSON.stringify(
        envelope({ id: "tx-9", anomaly: 65, uri: "/a?token=s3cr3t&id=1'--", method: "GET" }),
      ),
      { maxRecordBytes: 1 << 20 },
    );
    if (!n.ok) throw new Error(n.reason);
    const score = scoreEvent(n.event, DEFAULT_SCORING, Reputation.fromLists({}));
    const alert = toAlert(n.event, score, "1700000000123-0", {
      ipMasking: "truncate",
      ipHashKey: undefined,
    });
    expect(alert).toEqual({
      kind: "event",
      timestamp: 1700000000,
      severity: 95,
      severity_level: "critical",
      client_ip: "203.0.113.0",
      rule_id: "942100",
      categories: ["sqli"],
      uri: `/a?token=${REDACTED}&id=1'--`,
      method: "GET",
      tx_id: "tx-9",
      anomaly_score: 65,
    });
    expect(JSON.stringify(alert)).not.toContain("s3cr3t");
  });
});
