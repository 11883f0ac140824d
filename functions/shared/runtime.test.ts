import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../core/config.ts";
import { readMaliciousIpsFile, runtimeEnv } from "./runtime.ts";

describe("MALICIOUS_IPS_FILE", () => {
  const file = (text: string) => {
    const p = join(mkdtempSync(join(tmpdir(), "waf-ips-")), "list.txt");
    writeFileSync(p, text);
    return p;
  };

  it("reads IPs and CIDRs with comments", () => {
    expect(
      readMaliciousIpsFile(
        file("# feed\n203.0.113.9\n198.51.100.0/24 ; SBL1\n\n2001:db8::/32 // v6\n"),
      ),
    ).toEqual(["203.0.113.9", "198.51.100.0/24", "2001:db8::/32"]);
  });

  it("stops start-up naming the variable and the line", () => {
    expect(() => readMaliciousIpsFile(file("203.0.113.9\nevil.example\n"))).toThrow(ConfigError);
    expect(() => readMaliciousIpsFile(file("203.0.113.9\nevil.example\n"))).toThrow(
      /MALICIOUS_IPS_FILE line 2 is not an IP address or CIDR block: "evil.example"/,
    );
    expect(() => readMaliciousIpsFile("/nonexistent/list.txt")).toThrow(
      /MALICIOUS_IPS_FILE cannot be read/,
    );
  });

  it("is empty when unset", () => {
    expect(readMaliciousIpsFile(undefined)).toEqual([]);
  });
});

describe("runtimeEnv", () => {
  it("is the plain environment outside AWS", async () => {
    expect(await runtimeEnv({ REDIS_URL: "redis://x:6379" })).toEqual({
      REDIS_URL: "redis://x:6379",
    });
  });
});
