/**
 * Records written by attackers (test/fixtures/hostile.jsonl, one known attack on our outputs a
 * line) through the real pipeline — Redis with a password, InfluxDB 1.x (which validates every
 * line), the local Lambda runtime, every notification channel on (Slack, PagerDuty, a signed
 * webhook, SES email), throttling off so every alert is notified — and then:
 *
 * - every critical record alerted exactly once, and every channel got exactly its alerts,
 *   each notification within the channel's limits, well-formed, one-line where it must be;
 * - no secret — from a URI, a header, a URL or a token — appears in any log, point, alert,
 *   notification, dead-letter reason, `/healthz` answer or printed line.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningService, startInfluxDB1, startRedis } from "../local/services.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { influxQuery } from "./readback.ts";
import { type Receiver, startReceiver } from "./receivers.ts";
import { until } from "./wait.ts";

const ROOT = join(import.meta.dirname, "..");
const DB = "waf-hostile";
const LINES = readFileSync(join(ROOT, "test/fixtures/hostile.jsonl"), "utf8")
  .split("\n")
  .filter((l) => l.trim() !== "");
/** The valid records: each names the attack it carries (the last two lines are invalid). */
const RECORDS = LINES.flatMap((l) => {
  try {
    const r = JSON.parse(l) as {
      _attack?: string;
      transaction: { id: string; anomaly_score: number };
    };
    return r._attack ? [r as typeof r & { _attack: string }] : [];
  } catch {
    return [];
  }
});
/** Everything critical: every record but the one marked low (anomaly 1). */
const CRITICAL = RECORDS.filter((r) => r.transaction.anomaly_score > 1);
const PAGED = CRITICAL.filter((r) => r._attack !== "500 messages with 500 distinct rule ids");

/** Secrets the deployment holds, and ones the records carry. None may leak. */
const DEPLOY_SECRETS = {
  redis: "SECRET-redis-pw",
  influx: "SECRET-influx-pw",
  slack: "SECRET-slack-path",
  routingKey: "SECRET-pagerduty-key",
  webhookUrl: "SECRET-webhook-token",
  webhookSecret: "SECRET-webhook-hmac",
};
const RECORD_SECRETS = LINES.join("\n").match(/SECRET-[a-z][0-9]/g) ?? [];

let redisServer: RunningService;
let influx: RunningService;
let stack: Stack;
let redis: Redis;
let logDir: string;
const receivers: Record<"slack" | "pagerduty" | "webhook" | "ses", Receiver> = {} as never;

beforeAll(async () => {
  execFileSync(process.execPath, ["scripts/build.mjs", "reader"], { cwd: ROOT, stdio: "ignore" });
  redisServer = await startRedis({ password: DEPLOY_SECRETS.redis });
  influx = await startInfluxDB1({ database: DB });
  receivers.slack = await startReceiver({ path: `/services/T0/B0/${DEPLOY_SECRETS.slack}` });
  receivers.pagerduty = await startReceiver({
    path: "/v2/enqueue",
    behaviour: { status: 202, body: '{"status":"success"}' },
  });
  receivers.webhook = await startReceiver({ path: `/hook?token=${DEPLOY_SECRETS.webhookUrl}` });
  receivers.ses = await startReceiver({
    behaviour: {
      status: 200,
      body: '{"MessageId":"m-1"}',
      headers: { "content-type": "application/json" },
    },
  });
  const influxUrl = influx.url.replace("http://", `http://admin:${DEPLOY_SECRETS.influx}@`);
  logDir = mkdtempSync(join(tmpdir(), "waf-hostile-"));
  stack = await startStack({
    logDir,
    readerBundle: true,
    redisUrl: redisServer.url,
    influxUrl,
    influxApi: "v1",
    env: {
      LOG_LEVEL: "debug",
      POWERTOOLS_METRICS_DISABLED: "true",
      INFLUXDB_BUCKET: DB,
      CAMPAIGN_MIN_EVENTS: "0",
      ALERT_THROTTLE_S: "0",
      ALERT_CHANNEL_RATE_PER_MIN: "0",
      SLACK_WEBHOOK_URL: receivers.slack.url,
      PAGERDUTY_ROUTING_KEY: DEPLOY_SECRETS.routingKey,
      PAGERDUTY_EVENTS_URL: receivers.pagerduty.url,
      ALERT_WEBHOOK_URL: receivers.webhook.url,
      ALERT_WEBHOOK_SECRET: DEPLOY_SECRETS.webhookSecret,
      ALERT_EMAIL_FROM: "waf@example.com",
      ALERT_EMAIL_TO: "soc@example.com",
      AWS_ENDPOINT_URL_SESV2: receivers.ses.url,
      MAX_RETRIES: "2",
    },
  });
  redis = new Redis(redisServer.url);
  const p = redis.pipeline();
  for (const line of LINES) p.xadd("waf-realtime", "*", "event", line);
  await p.exec();
  await until(
    "every record settled and every notification sent",
    async () => {
      const g = (await redis.xinfo("GROUPS", "waf-realtime")) as unknown[][];
      const row = g[0] ?? [];
      const at = (k: string) => Number(row[row.indexOf(k) + 1]);
      return (
        at("entries-read") === LINES.length &&
        at("pending") === 0 &&
        receivers.slack.requests.length >= CRITICAL.length &&
        receivers.webhook.requests.length >= CRITICAL.length &&
        receivers.pagerduty.requests.length >= PAGED.length &&
        receivers.ses.requests.length >= PAGED.length
      );
    },
    90_000,
  );
  // Anything still to come would arrive now.
  await new Promise((r) => setTimeout(r, 1500));
}, 180_000);

afterAll(async () => {
  await redis?.quit();
  await stack?.stop();
  await Promise.all(Object.values(receivers).map((r) => r?.close()));
  await influx?.stop();
  await redisServer?.stop();
});

const utf8Roundtrip = (s: string) => Buffer.from(s, "utf8").toString("utf8") === s;

describe("hostile records through the real pipeline", () => {
  it("lists exactly one alert per critical record, and dead-letters only the invalid ones", async () => {
    const alerts = (await redis.lrange("waf-alerts", 0, -1)).map((a) => JSON.parse(a));
    expect(alerts).toHaveLength(CRITICAL.length);
    expect(new Set(alerts.map((a) => a.tx_id)).size).toBe(CRITICAL.length);
    for (const a of alerts) expect(Buffer.byteLength(JSON.stringify(a))).toBeLessThan(8 * 1024);
    const dlq = await redis.xrange("waf-realtime:dlq", "-", "+");
    expect(dlq).toHaveLength(LINES.length - RECORDS.length);
  });

  it("sends each channel exactly its alerts, within its limits", () => {
    const { slack, pagerduty, webhook, ses } = receivers;
    expect(slack.requests).toHaveLength(CRITICAL.length);
    expect(webhook.requests).toHaveLength(CRITICAL.length);
    expect(pagerduty.requests).toHaveLength(PAGED.length);
    expect(ses.requests).toHaveLength(PAGED.length);
    for (const r of [...slack.requests, ...pagerduty.requests, ...webhook.requests]) {
      expect(r.json).toBeDefined();
      expect(utf8Roundtrip(r.body)).toBe(true);
      expect(Buffer.byteLength(r.body)).toBeLessThan(40 * 1024);
    }
    for (const r of slack.requests) {
      const m = r.json as { text: string; blocks: Array<Record<string, unknown>> };
      expect(m.text.length).toBeLessThanOrEqual(3000);
      for (const b of m.blocks) {
        const text = (b.text as { text?: string } | undefined)?.text ?? "";
        expect(text.length).toBeLessThanOrEqual(b.type === "header" ? 150 : 3000);
        for (const f of (b.fields as Array<{ text: string }> | undefined) ?? []) {
          expect(f.text.length).toBeLessThanOrEqual(2000);
        }
      }
      // No live mention or link made from request text.
      expect(r.body).not.toMatch(/<!channel>|<!here|<@U123>|<https:\/\/evil/);
    }
    for (const r of pagerduty.requests) {
      const e = r.json as { dedup_key: string; payload: Record<string, unknown> };
      expect(e.dedup_key.length).toBeLessThanOrEqual(255);
      expect((e.payload.summary as string).length).toBeLessThanOrEqual(1024);
      for (const k of ["source", "component", "group", "class"]) {
        const v = String(e.payload[k] ?? "");
        expect(v.length).toBeLessThanOrEqual(255);
        expect(v).not.toMatch(/[\r\n]/);
      }
    }
    const deliveries = webhook.requests.map((r) => String(r.headers["x-waf-delivery"]));
    expect(new Set(deliveries).size).toBe(CRITICAL.length);
    for (const r of webhook.requests) {
      for (const v of Object.values(r.headers)) expect(String(v)).not.toMatch(/[\r\n]/);
    }
    for (const r of ses.requests) {
      const mail = r.json as { Content: { Simple: { Subject: { Data: string } } } };
      const subject = mail.Content.Simple.Subject.Data;
      expect(subject).not.toMatch(/[\r\n]/);
      expect(subject.length).toBeLessThanOrEqual(200);
      // SESv2 takes the subject as a JSON field, not raw MIME: the request cannot add a header;
      // its text stays inside one body line.
      const text = (r.json as { Content: { Simple: { Body: { Text: { Data: string } } } } }).Content
        .Simple.Body.Text.Data;
      expect(text).not.toMatch(/^(Bcc|X-Injected):/im);
    }
  });

  it("stores one valid point per valid record in InfluxDB 1.x (every line accepted)", async () => {
    const series = await influxQuery(influx.url, DB, 'SELECT count("severity") FROM "waf_events"');
    const count = Number((series[0]?.values?.[0] as unknown[] | undefined)?.[1] ?? 0);
    expect(count).toBe(RECORDS.length);
  });

  it("lets no secret reach a log, point, alert, notification, DLQ reason, /healthz or printed line", async () => {
    const texts: Array<[string, string]> = [];
    for (const f of readdirSync(logDir))
      texts.push([`log ${f}`, readFileSync(join(logDir, f), "utf8")]);
    const points = await influxQuery(influx.url, DB, 'SELECT * FROM "waf_events"');
    texts.push([
      "points",
      JSON.stringify(points, (_k, v) => (typeof v === "bigint" ? String(v) : v)),
    ]);
    texts.push(["alerts", (await redis.lrange("waf-alerts", 0, -1)).join("\n")]);
    const reasons = (await redis.xrange("waf-realtime:dlq", "-", "+")).map(
      ([, f]) => f[f.indexOf("reason") + 1],
    );
    texts.push(["dlq reasons", reasons.join("\n")]);
    for (const [name, r] of Object.entries(receivers)) {
      for (const req of r.requests) {
        // PagerDuty's request carries its routing key by design: everything else must not.
        const body =
          name === "pagerduty"
            ? JSON.stringify({ ...(req.json as object), routing_key: undefined })
            : req.body;
        texts.push([`${name} body`, body]);
        const { authorization: _auth, ...headers } = req.headers;
        texts.push([`${name} headers`, JSON.stringify(headers)]);
      }
    }
    texts.push(["/healthz", await (await fetch(stack.healthUrl() as string)).text()]);
    const status = execFileSync(process.execPath, ["bin/waf.js", "status", "--sample", "0"], {
      cwd: ROOT,
      env: { ...process.env, REDIS_URL: redisServer.url },
      encoding: "utf8",
    });
    texts.push(["waf status", status]);
    const secrets = [...Object.values(DEPLOY_SECRETS), ...RECORD_SECRETS];
    expect(RECORD_SECRETS.length).toBeGreaterThanOrEqual(10);
    const leaks = texts.flatMap(([where, text]) =>
      secrets.filter((s) => text.includes(s)).map((s) => `${s} in ${where}`),
    );
    expect(leaks).toEqual([]);
  });
});
