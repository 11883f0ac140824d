import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { envelope, fixtureFiles, MODSEC_FIXTURES } from "../test/fixtures/records.ts";

const run = promisify(execFile);
const WAF = join(import.meta.dirname, "../bin/waf.js");

async function waf(args: string[], input?: string, env: Record<string, string> = {}) {
  const child = run(process.execPath, [WAF, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("waf score", () => {
  it("prints one JSON line per non-blank input line, in order, for every shared fixture", async () => {
    const input = fixtureFiles()
      .map((f) => readFileSync(join(MODSEC_FIXTURES, f), "utf8"))
      .join("\n");
    const nonBlank = input.split("\n").filter((l) => l.trim() !== "").length;
    const { code, stdout, stderr } = await waf(["score"], input);
    expect(code).toBe(0);
    const out = stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(out).toHaveLength(nonBlank);
    const errors = out.filter((o) => "error" in o);
    expect(errors).toHaveLength(10);
    for (const e of errors) expect(e.error).toMatch(/ModSecurity 2\.x/);
    const scored = out.filter((o) => "tx_id" in o);
    expect(scored).toHaveLength(9);
    for (const s of scored) {
      expect(Object.keys(s)).toEqual([
        "tx_id",
        "client_ip",
        "anomaly_score",
        "severity",
        "severity_level",
        "rule_id",
        "categories",
        "alert",
      ]);
    }
    expect(stderr).toContain("9 scored, 10 invalid");
  });

  it("numbers lines from 1 counting blank ones, and skips blanks in the output", async () => {
    const good = JSON.stringify(envelope({ id: "a", anomaly: 65 }));
    const { code, stdout } = await waf(["score"], `${good}\n\n  \nnot json\n${good}\r\n`);
    expect(code).toBe(0);
    const out = stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(out).toEqual([
      {
        tx_id: "a",
        client_ip: "203.0.113.9",
        anomaly_score: 65,
        severity: 95,
        severity_level: "critical",
        rule_id: "942100",
        categories: ["sqli"],
        alert: true,
      },
      { line: 4, error: expect.stringMatching(/^not JSON/) },
      expect.objectContaining({ tx_id: "a" }),
    ]);
  });

  it("reads a FILE argument and applies the reputation and allowlist config", async () => {
    const file = join(MODSEC_FIXTURES, "modsec3-crs4_longhdwst1full_rotated-153553.jsonl");
    const listed = await waf(["score", file], undefined, { MALICIOUS_IPS: "172.18.0.0/16" });
    expect(JSON.parse(listed.stdout)).toMatchObject({ severity: 45, severity_level: "medium" });
    const allowed = await waf(["score", file], undefined, {
      MALICIOUS_IPS: "172.18.0.0/16",
      ALLOWLIST_IPS: "172.18.0.1",
    });
    expect(JSON.parse(allowed.stdout)).toMatchObject({ severity: 30, alert: false });
  });

  it("stops with the variable's name on bad config, printing nothing to stdout", async () => {
    const { code, stdout, stderr } = await waf(["score"], "", { SEVERITY_THRESHOLDS: "1,2,3" });
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toContain("SEVERITY_THRESHOLDS");
  });
});
