import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  envelope,
  fixtureFiles,
  MODSEC_FIXTURES,
  REALWAF_FIXTURES,
} from "../test/fixtures/records.ts";
import { run as runWaf } from "./run.ts";

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
        "blocked",
        "profile",
      ]);
      expect(s.profile).toBe("seed");
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
        blocked: null,
        profile: "seed",
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

/** The same invocation in this process (cli/run.ts): cheaper than a process. */
async function wafIn(args: string[], env: Record<string, string> = {}) {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = "";
  let stderr = "";
  out.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  err.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await runWaf(
    args,
    { PATH: process.env.PATH ?? "", ...env },
    { stdout: out, stderr: err },
  );
  return { code, stdout, stderr };
}

const CORPUS = join(REALWAF_FIXTURES, "crs3-pl1-detect.jsonl.gz");
const LABELS = join(REALWAF_FIXTURES, "labels-crs3-pl1-detect.jsonl.gz");

const parseLines = (stdout: string) =>
  stdout
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** The data rows of one section of a --report table: label → [records, low, medium, high, critical, alerts]. */
function section(stdout: string, title: string): Map<string, number[]> {
  const start = stdout.indexOf(`\n${title}:\n`);
  expect(start, `section "${title}" in\n${stdout}`).toBeGreaterThan(-1);
  const rows = new Map<string, number[]>();
  for (const line of stdout
    .slice(start + title.length + 3)
    .split("\n")
    .slice(3)) {
    if (!line.startsWith("|")) break;
    const cells = line
      .split("|")
      .slice(1, -1)
      .map((c) => c.trim());
    rows.set(
      cells[0] ?? "",
      cells.slice(1).map((c) => Number(c.replaceAll(",", ""))),
    );
  }
  return rows;
}

describe("waf score with SCORING_PROFILE=crs", () => {
  it("reads .gz files and prints the crs level, blocked and profile", async () => {
    const { code, stdout } = await wafIn(["score", CORPUS], { SCORING_PROFILE: "crs" });
    expect(code).toBe(0);
    const out = parseLines(stdout);
    expect(out).toHaveLength(1937);
    expect(new Set(out.map((o) => o.profile))).toEqual(new Set(["crs"]));
    // A DetectionOnly run: nothing was blocked.
    expect(new Set(out.map((o) => o.blocked))).toEqual(new Set([false]));
    expect(out.some((o) => o.severity_level === "critical")).toBe(true);
  });

  it("prints blocked true for the blocking run's denied requests", async () => {
    const { stdout } = await wafIn(["score", join(REALWAF_FIXTURES, "crs4-pl1-sample.jsonl.gz")]);
    const out = parseLines(stdout);
    expect(out.filter((o) => o.blocked === true).length).toBeGreaterThan(100);
    expect(out.filter((o) => o.blocked === false).length).toBeGreaterThan(0);
  });
});

describe("waf score --report", () => {
  it("prints the level table that the per-record lines add up to", async () => {
    const env = { SCORING_PROFILE: "crs" };
    const [lines, report] = await Promise.all([
      wafIn(["score", CORPUS], env),
      wafIn(["score", "--report", CORPUS], env),
    ]);
    expect(report.code).toBe(0);
    expect(report.stdout).toMatch(/^profile crs: 1,937 records scored, 0 invalid/);
    const out = parseLines(lines.stdout);
    const count = (f: (o: Record<string, unknown>) => boolean) => {
      const rs = out.filter(f);
      return [
        rs.length,
        ...["low", "medium", "high", "critical"].map(
          (l) => rs.filter((o) => o.severity_level === l).length,
        ),
        rs.filter((o) => o.alert === true).length,
      ];
    };
    expect(section(report.stdout, "all").get("all records")).toEqual(count(() => true));
    expect(
      section(report.stdout, "by what the firewall did").get("reached the application"),
    ).toEqual(count((o) => o.blocked === false));
    const categories = section(
      report.stdout,
      "by CRS rule category (a record counts in each category of its rules)",
    );
    expect(categories.get("sqli (942)")).toEqual(
      count((o) => (o.categories as string[]).includes("sqli")),
    );
    expect(categories.get("java (944)")).toEqual(
      count((o) => (o.categories as string[]).includes("java")),
    );
  });

  it("adds a row per label with --labels, on a plain (not gzipped) file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "waf-score-"));
    try {
      const records = gunzipSync(readFileSync(CORPUS)).toString("utf8");
      const file = join(dir, "records.jsonl");
      writeFileSync(file, records);
      const { code, stdout } = await wafIn(["score", "--report", file, "--labels", LABELS], {
        SCORING_PROFILE: "crs",
      });
      expect(code).toBe(0);
      const labels = section(stdout, "by label");
      expect([...labels.keys()]).toEqual(["attack", "benign"]);
      expect(labels.get("benign")?.[0]).toBe(15);
      // One benign request scored twice the threshold in application-attack rules: the one alert.
      expect(labels.get("benign")?.[5]).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    [["score", "a", "b"], /one FILE at most/],
    [["score", "--labels", "x"], /--labels goes with --report/],
    [["score", "--bogus"], /waf score: Unknown option '--bogus'/],
  ])("refuses %j with exit code 2", async (args, message) => {
    const { code, stdout, stderr } = await wafIn(args);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(message);
  });

  it.each([
    [
      "a file that does not exist",
      "/nonexistent/audit.log",
      /cannot read \/nonexistent\/audit\.log: ENOENT/,
    ],
    ["a .gz file that is not gzip", join(MODSEC_FIXTURES, "README.md"), null],
  ])("fails with exit code 1 on %s", async (_name, file, message) => {
    let path = file;
    const dir = mkdtempSync(join(tmpdir(), "waf-score-"));
    if (message === null) {
      path = join(dir, "bad.jsonl.gz");
      writeFileSync(path, "not gzip at all");
    }
    try {
      const { code, stderr } = await wafIn(["score", "--report", path]);
      expect(code).toBe(1);
      expect(stderr).toMatch(message ?? /not a valid \.gz file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
