/**
 * The operator's commands against the whole local pipeline (local/stack.ts: real Redis,
 * VictoriaMetrics, the local Lambda runtime and the stream reader): replay real fixtures, watch
 * `waf status` settle, read the alerts and the DLQ, and redrive a dead-lettered record that the
 * running reader then processes.
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "../local/stack.ts";
import { until } from "../test/wait.ts";

const ROOT = join(import.meta.dirname, "..");
const FIXTURES = join(ROOT, "test/fixtures/modsecurity");

function waf(args: string[], env: Record<string, string | undefined>) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/waf.js", ...args], {
      cwd: ROOT,
      env: { ...env, LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

interface StatusJson {
  stream: { length: number };
  group: { exists: boolean; lag: number; pending: number };
  dlq: { length: number };
  alerts: { length: number };
}

describe("waf commands on the running local pipeline", () => {
  let stack: Stack;
  let redis: Redis;
  let env: Record<string, string | undefined>;

  beforeAll(async () => {
    stack = await startStack({
      logDir: mkdtempSync(join(tmpdir(), "waf-cli-e2e-")),
      env: { BATCH_SIZE: "8", BATCH_WINDOW_MS: "10", LOG_LEVEL: "warn" },
    });
    redis = new Redis(stack.redisUrl);
    env = { ...stack.env };
  });
  afterAll(async () => {
    await redis?.quit();
    await stack?.stop();
  });

  const settled = () =>
    until("the pipeline to settle", async () => {
      const r = await waf(["status", "--sample", "0", "--json"], env);
      const s = JSON.parse(r.stdout) as StatusJson;
      return s.group.exists && s.group.lag === 0 && s.group.pending === 0 && s;
    });

  it("replays the fixtures; status, alerts and dlq show what the pipeline made of them; a redriven record is processed", async () => {
    const critical = JSON.stringify({
      transaction: {
        id: "cli-e2e-critical",
        client_ip: "203.0.113.50",
        anomaly_score: 65,
        request: { uri: "/login", method: "POST" },
        messages: [{ details: { ruleId: "942100", msg: "SQL Injection" } }],
      },
    });
    const replayed = await waf(["replay", FIXTURES], env);
    expect(replayed.code).toBe(0);
    expect(replayed.stdout).toMatch(/^replayed 19 records from 4 sources/);

    const s = await settled();
    expect(s).toMatchObject({ stream: { length: 19 }, dlq: { length: 10 } });

    const status = await waf(["status"], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain("Stream waf-realtime: 19 entries");
    expect(status.stdout).toContain("lag 0 entries not yet read, 0 entries pending");
    expect(status.stdout).toMatch(/consumer [\w.-]+: 0 pending, idle/);
    expect(status.stdout).toContain("Dead-letter stream waf-realtime:dlq: 10 entries");
    expect(status.stdout).toContain("10 records dead-lettered: see why with waf dlq list");

    // The ModSecurity 2.x lines are the dead-lettered ones, each with its reason.
    const dlq = await waf(["dlq", "list", "--reason", "ModSecurity 2", "--json"], env);
    const entries = dlq.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, string>);
    expect(entries).toHaveLength(10);
    for (const e of entries) {
      expect(e.reason).toMatch(/ModSecurity 2\.x/);
      expect(e.event).toMatch(/^\{/);
    }

    // A valid critical record that was dead-lettered (say InfluxDB refused its point while
    // misconfigured): redrive puts it back, the running reader scores it, the alert appears.
    await redis.xadd(
      "waf-realtime:dlq",
      "*",
      "reason",
      "InfluxDB refused the point: database not found",
      "attempts",
      "1",
      "entry_id",
      "1-1",
      "stream",
      "waf-realtime",
      "group",
      "realtime-processor",
      "consumer",
      "reader",
      "failed_at",
      new Date().toISOString(),
      "event",
      critical,
    );
    const before = await waf(["alerts", "--json", "--limit", "100"], env);
    expect(before.stdout).not.toContain("cli-e2e-critical");

    const redriven = await waf(["dlq", "redrive", "--reason", "database not found"], env);
    expect(redriven.code).toBe(0);
    expect(redriven.stdout).toContain("redrove 1 record from waf-realtime:dlq to waf-realtime");

    const alert = await until("the redriven record's alert", async () => {
      const r = await waf(["alerts", "--json", "--rule", "942100", "--limit", "100"], env);
      return r.stdout
        .trimEnd()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { tx_id: string; severity: number })
        .find((a) => a.tx_id === "cli-e2e-critical");
    });
    expect(alert.severity).toBe(95);
    const after = await settled();
    expect(after).toMatchObject({ stream: { length: 20 }, dlq: { length: 10 } });

    const table = await waf(["alerts", "--limit", "1"], env);
    expect(table.stdout).toMatch(
      /critical\s+95\s+203\.0\.113\.50\s+942100\s+sqli\s+POST\s+cli-e2e-critical\s+\/login/,
    );
  });
});
