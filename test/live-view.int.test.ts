/**
 * The live view (local/web) rendered in headless Chromium with real data: the local pipeline
 * (real Redis, VictoriaMetrics, local Lambda runtime, reader) processes replayed records, the
 * view is started the way an operator starts it (`waf view`), and the page must show the
 * alerts newest first, update live, and render attacker-controlled fields as inert text.
 * A screenshot is saved as .tmp/live-view.png.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AlertList } from "../core/alert/alert-list.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { until } from "./wait.ts";

// The page's globals, for the functions that run in the browser (the project compiles without
// the DOM library; these declarations stay inside this module).
interface PageNode {
  textContent: string | null;
}
declare const document: {
  querySelector(selector: string): PageNode | null;
  querySelectorAll(selector: string): { length: number };
};
declare const window: { __xss?: number };

const ROOT = join(import.meta.dirname, "..");
const SHOT = join(ROOT, ".tmp", "live-view.png");
const XSS_URI = `/search?q=<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`;

function envelope(id: string, ip: string, rule: string, anomaly: number, uri = "/login") {
  return JSON.stringify({
    transaction: {
      id,
      client_ip: ip,
      anomaly_score: anomaly,
      request: { uri, method: "POST" },
      messages: [{ details: { ruleId: rule, msg: `rule ${rule}` } }],
    },
  });
}

function run(args: string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env,
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
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts a long-running process and resolves with the first URL matching `pattern` on stdout. */
function startServing(
  args: string[],
  env: NodeJS.ProcessEnv,
  pattern: RegExp,
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) resolve({ child, url: m[1] as string, output: () => out });
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => reject(new Error(`exited with ${code} before serving: ${out}`)));
  });
}

function stopped(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    child.removeAllListeners("exit");
    child.once("exit", (code) => resolve(code));
    child.kill("SIGINT");
  });
}

/** Width and height from a PNG's IHDR chunk. */
function pngSize(file: string): { width: number; height: number } {
  const b = readFileSync(file);
  expect(b.subarray(1, 4).toString()).toBe("PNG");
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}

describe("live view", () => {
  let stack: Stack;
  let redis: Redis;
  let browser: Browser;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    [stack, browser] = await Promise.all([
      startStack({
        logDir: mkdtempSync(join(tmpdir(), "waf-view-")),
        env: { BATCH_SIZE: "8", BATCH_WINDOW_MS: "10", LOG_LEVEL: "warn" },
      }),
      chromium.launch({
        executablePath: "/usr/bin/chromium",
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      }),
    ]);
    redis = new Redis(stack.redisUrl);
    env = { ...stack.env, LOG_LEVEL: "warn" };
  });

  afterAll(async () => {
    await browser?.close();
    await redis?.quit();
    await stack?.stop();
  });

  it("shows the pipeline's alerts newest first, updates live, renders hostile fields as text, and screenshots", async () => {
    // Records through the real pipeline: 203.0.113.7 attacks most; one URI carries markup.
    const records = [
      envelope("v-1", "203.0.113.7", "942100", 65),
      envelope("v-2", "203.0.113.7", "932160", 60),
      envelope("v-3", "198.51.100.4", "941100", 70),
      envelope("v-4", "203.0.113.7", "942100", 80),
      envelope("v-5", "2001:db8::66", "930120", 75, XSS_URI),
      envelope("v-low", "192.0.2.1", "920350", 10),
      "{not json",
      JSON.stringify({ transaction: { id: "no-ip" } }),
    ];
    const dir = mkdtempSync(join(tmpdir(), "waf-view-records-"));
    writeFileSync(join(dir, "records.jsonl"), `${records.join("\n")}\n`);
    const replayed = await run(["bin/waf.js", "replay", join(dir, "records.jsonl")], env);
    expect(replayed.code).toBe(0);
    await until("five alerts and two DLQ entries", async () => {
      const [alerts, dlq] = await Promise.all([
        redis.llen("waf-alerts"),
        redis.xlen("waf-realtime:dlq"),
      ]);
      return alerts === 5 && dlq === 2;
    });

    // An alert pushed straight into the list, as a compromised or buggy producer could: every
    // field hostile.
    const list = new AlertList(redis, {
      listKey: "waf-alerts",
      maxLength: 1000,
      retentionSeconds: 3600,
    });
    await list.push([
      {
        timestamp: Math.floor(Date.now() / 1000),
        severity: 130,
        severity_level: "critical",
        client_ip: `"><svg onload="window.__xss=3">`,
        rule_id: "<img src=x onerror=window.__xss=4>",
        categories: ["<b>bold</b>"],
        uri: "</td></tr></table><script>window.__xss=5</script>",
        method: "<i>GET</i>",
        tx_id: "hostile-1",
        anomaly_score: 100,
      },
    ]);

    const view = await startServing(
      ["bin/waf.js", "view", "--port", "0", "--interval", "0.5"],
      env,
      /live view on (http:\/\/127\.0\.0\.1:\d+\/)/,
    );
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const pageErrors: string[] = [];
      page.on("pageerror", (e) => pageErrors.push(e.message));
      await page.goto(view.url);
      await page.waitForSelector("body[data-ready=true]");
      await page.waitForFunction(() => document.querySelectorAll("#alerts tbody tr").length === 6);

      const txIds = await page.$$eval("#alerts tbody tr td:last-child", (tds) =>
        tds.map((td) => td.textContent),
      );
      // Newest first: the list's own order (the alert function lists them as it gets them).
      const listed = (await redis.lrange("waf-alerts", 0, -1)).map((a) => JSON.parse(a).tx_id);
      expect(txIds).toEqual(listed);
      expect(txIds[0]).toBe("hostile-1");
      expect([...txIds].sort()).toEqual(["hostile-1", "v-1", "v-2", "v-3", "v-4", "v-5"]);

      // Inert: nothing ran, no element was injected, the text is shown as it came.
      expect(await page.evaluate(() => window.__xss)).toBeUndefined();
      expect(
        await page
          .locator("#alerts img, #alerts svg, #alerts script, #alerts b, #alerts i")
          .count(),
      ).toBe(0);
      const cells = await page.$$eval("#alerts tbody tr", (rows) =>
        rows.map((r) => Array.from(r.querySelectorAll("td"), (td) => (td as PageNode).textContent)),
      );
      expect(cells[0]).toEqual([
        expect.any(String),
        "critical",
        "130",
        `"><svg onload="window.__xss=3">`,
        "<img src=x onerror=window.__xss=4>",
        "<b>bold</b>",
        "<i>GET</i>",
        "</td></tr></table><script>window.__xss=5</script>",
        "hostile-1",
      ]);
      const v5 = cells.find((c) => c[8] === "v-5");
      expect(v5?.[7]).toBe(XSS_URI);
      expect(v5?.slice(1, 6)).toEqual(["critical", "95", "2001:db8::66", "930120", "lfi"]);

      // Summary panels: the last hour, from the alert list.
      const topIps = await page.$$eval("#top-ips tbody tr", (rows) =>
        rows.map((r) => [r.children[0]?.textContent, r.children[1]?.textContent]),
      );
      expect(topIps[0]).toEqual(["203.0.113.7", "3"]);
      const topRules = await page.$$eval("#top-rules tbody tr", (rows) =>
        rows.map((r) => [
          r.children[0]?.textContent,
          r.children[1]?.textContent,
          r.children[3]?.textContent,
        ]),
      );
      expect(topRules[0]).toEqual(["942100", "2", "sqli"]);
      const levels = await page.$$eval("#levels .bar", (bars) =>
        bars.map((b) => [b.getAttribute("data-key"), b.querySelector(".bar-count")?.textContent]),
      );
      // Every scored event by level (the scorer's counts), not only alerts: the five critical
      // records and the low one; the hostile alert was pushed by hand and was never scored.
      expect(levels).toEqual([
        ["critical", "5"],
        ["high", "0"],
        ["medium", "0"],
        ["low", "1"],
      ]);
      expect(await page.textContent("#events-hour")).toBe("6");
      expect(await page.textContent("#dlq")).toBe("2");
      expect(await page.textContent("#lag")).toBe("0");
      expect(await page.textContent("#stream-length")).toBe("8");
      expect(await page.textContent("#alerts-total")).toBe("6");
      expect(await page.textContent("#connection")).toBe("live");

      // Live: a new critical record through the pipeline shows up without a reload.
      await redis.xadd(
        "waf-realtime",
        "*",
        "event",
        envelope("v-new", "198.51.100.99", "942100", 90),
      );
      await page.waitForFunction(
        () => document.querySelector("#alerts tbody tr td:last-child")?.textContent === "v-new",
        undefined,
        { timeout: 20_000 },
      );
      // The list's length is read a moment before its rows: the tile catches up on the next update.
      await page.waitForFunction(
        () => document.querySelector("#alerts-total")?.textContent === "7",
      );

      mkdirSync(join(ROOT, ".tmp"), { recursive: true });
      await page.screenshot({ path: SHOT, fullPage: true });
      const { width, height } = pngSize(SHOT);
      expect(width).toBe(1400);
      expect(height).toBeGreaterThanOrEqual(1000);
      // A blank or near-blank page compresses to a few KB.
      expect(statSync(SHOT).size).toBeGreaterThan(40_000);
      expect(pageErrors).toEqual([]);
      await page.close();

      // The server's own defences.
      const res = await fetch(view.url);
      expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
      // fetch() may not set Host; a raw request can, like a DNS-rebinding page's would arrive.
      const rebinding = await new Promise<number | undefined>((resolve, reject) => {
        const u = new URL("/api/summary", view.url);
        request(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            headers: { host: "attacker.example" },
          },
          (r) => {
            r.resume();
            resolve(r.statusCode);
          },
        )
          .on("error", reject)
          .end();
      });
      expect(rebinding).toBe(421);
    } finally {
      expect(await stopped(view.child)).toBe(0);
    }
  });

  it("is served by npm start, which prints its URL", async () => {
    const startEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: "warn" };
    delete startEnv.REDIS_URL;
    delete startEnv.INFLUXDB_URL;
    startEnv.WAF_LOG_DIR = mkdtempSync(join(tmpdir(), "waf-start-"));
    const started = await startServing(
      ["--import", "tsx", "local/start.ts", "--view-port", "0"],
      startEnv,
      /live view {3}(http:\/\/127\.0\.0\.1:\d+\/)/,
    );
    try {
      const summary = (await (await fetch(new URL("/api/summary", started.url))).json()) as {
        redis: { ok: boolean };
        stream: { key: string };
      };
      expect(summary.redis.ok).toBe(true);
      expect(summary.stream.key).toBe("waf-realtime");
      const page = await browser.newPage();
      await page.goto(started.url);
      await page.waitForSelector("body[data-ready=true]");
      expect(await page.textContent("#alerts-empty")).toBe("No alerts yet.");
      await page.close();
    } finally {
      expect(await stopped(started.child)).toBe(0);
    }
  });
});
