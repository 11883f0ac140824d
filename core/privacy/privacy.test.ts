import { describe, expect, it } from "vitest";
import { envelope } from "../../test/fixtures/records.ts";
import { toAlert } from "../alert/alert.ts";
import { normalise } from "../event/normalise.ts";
import { Reputation } from "../scoring/reputation.ts";
import { DEFAULT_SCORING, scoreEvent } from "../scoring/score.ts";
import { isSecretName, maskIp, nameWords, REDACTED, redactUri } from "./privacy.ts";

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

  it("cuts after redacting, never inside a surrogate pair", () => {
    const cut = redactUri(`/${"a".repeat(2046)}😀😀?password=hunter2`);
    expect(cut).not.toContain("hunter2");
    expect(cut.endsWith("a…")).toBe(true);
  });
});

describe("row 7: credentials survive no normalisation of their parameter's name", () => {
  it.each([
    // camelCase
    ["/api?accessToken=s3cr3t&page=2", `/api?accessToken=${REDACTED}&page=2`],
    ["/api?authToken=s3cr3t", `/api?authToken=${REDACTED}`],
    ["/api?apiToken=s3cr3t", `/api?apiToken=${REDACTED}`],
    ["/oauth?clientSecret=s3cr3t&client_id=app", `/oauth?clientSecret=${REDACTED}&client_id=app`],
    ["/api?APIKey=s3cr3t", `/api?APIKey=${REDACTED}`],
    ["/api?apiKey=s3cr3t", `/api?apiKey=${REDACTED}`],
    [
      "/reset?newPassword=s3cr3t&passwordConfirm=s3cr3t",
      `/reset?newPassword=${REDACTED}&passwordConfirm=${REDACTED}`,
    ],
    // brackets, and the same percent-encoded (also twice)
    [
      "/login?user[name]=bob&user[password]=s3cr3t",
      `/login?user[name]=bob&user[password]=${REDACTED}`,
    ],
    ["/login?user%5Bpassword%5D=s3cr3t", `/login?user%5Bpassword%5D=${REDACTED}`],
    ["/login?%70assword=s3cr3t", `/login?%70assword=${REDACTED}`],
    ["/login?%2570assword=s3cr3t", `/login?%2570assword=${REDACTED}`],
    ["/login?a%=1&pass%77ord=s3cr3t%E9", `/login?a%=1&pass%77ord=${REDACTED}`],
    [
      "/login?password[]=s3cr3t&password[0]=s3cr3t",
      `/login?password[]=${REDACTED}&password[0]=${REDACTED}`,
    ],
    // `-`, `_`, `.` and case
    [
      "/api?X-Api-Key=s3cr3t&x.auth.token=s3cr3t",
      `/api?X-Api-Key=${REDACTED}&x.auth.token=${REDACTED}`,
    ],
    [
      "/api?SESSION_ID=s3cr3t&Refresh-Token=s3cr3t",
      `/api?SESSION_ID=${REDACTED}&Refresh-Token=${REDACTED}`,
    ],
    // full-width letters
    ["/api?ｐａｓｓｗｏｒｄ=s3cr3t", `/api?ｐａｓｓｗｏｒｄ=${REDACTED}`],
    // `;` separates query parameters too
    ["/api?a=1;token=s3cr3t", `/api?a=1;token=${REDACTED}`],
    // path parameters
    ["/app;jsessionid=S3CR3T?x=1", `/app;jsessionid=${REDACTED}?x=1`],
    ["/a;v=2;JSESSIONID=S3CR3T/b", `/a;v=2;JSESSIONID=${REDACTED}/b`],
    // fragments that hold parameters (OAuth implicit flow)
    [
      "/cb#access_token=s3cr3t&token_type=bearer&state=x",
      `/cb#access_token=${REDACTED}&token_type=${REDACTED}&state=x`,
    ],
    ["/cb?x=1#id_token=s3cr3t", `/cb?x=1#id_token=${REDACTED}`],
    // protocol-relative userinfo
    ["//admin:s3cr3t@example.com/x", `//${REDACTED}@example.com/x`],
  ])("%s", (uri, out) => {
    expect(redactUri(uri)).toBe(out);
    expect(redactUri(uri)).not.toMatch(/s3cr3t|S3CR3T/);
  });

  it.each([
    "/search?q=token&page=2",
    "/p?keyword=x&monkey=1&key_id=3&code_point=5&tokenizer=w&secretary=x",
    "/a;v=2/b",
    "/docs#section-2",
    "/x?state=abc&client_id=app&redirect_uri=%2Fhome",
  ])("leaves %s alone", (uri) => {
    expect(redactUri(uri)).toBe(uri);
  });

  it("splits names into words", () => {
    expect(nameWords("user[accessToken]")).toEqual(["user", "access", "token"]);
    expect(nameWords("X-Amz-Security-Token")).toEqual(["x", "amz", "security", "token"]);
    expect(nameWords("APIKey")).toEqual(["api", "key"]);
    expect(nameWords("password[0]")).toEqual(["password"]);
    expect(isSecretName("session_id")).toBe(true);
    expect(isSecretName("state")).toBe(false);
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
