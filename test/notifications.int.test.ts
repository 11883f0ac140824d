/**
 * Notifications end to end (reference §4), with REAL local HTTP receivers standing in for Slack,
 * PagerDuty and a webhook, and a REAL Redis for the alert list and throttle state:
 * exact request bodies and headers, per-channel minimum severity, retries without double
 * sends, receivers that answer 500 or hang, the circuit breaker, the storm (1,000 critical
 * alerts from 5 IPs), throttle summaries, and the whole pipeline through `startStack`.
 * Every test has its own list key (so its own throttle state) and its own receivers.
 */
import { createHmac, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Logger } from "@aws-lambda-powertools/logger";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import type { Alert } from "../core/alert/alert.ts";
import { AlertList } from "../core/alert/alert-list.ts";
import { webhookDeliveryId } from "../core/alert/channels/webhook.ts";
import type { FetchFn } from "../core/alert/delivery.ts";
import { alertKeys } from "../core/alert/keys.ts";
import type { ChannelNotifierOptions } from "../core/alert/notifier.ts";
import { notifiersFromConfig } from "../core/alert/notifiers.ts";
import { type Config, loadConfig } from "../core/config.ts";
import type { AlertResult } from "../core/use-cases/handle-alerts.ts";
import { createHandler } from "../functions/alert.ts";
import { type RunningService, startRedis } from "../local/services.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { campaignAlert } from "./alerts.ts";
import { envelope } from "./fixtures/records.ts";
import { captureLogs, fakeContext, type LogLine } from "./lambda.ts";
import { type ReceivedRequest, type Receiver, startReceiver } from "./receivers.ts";

const SLACK_PATH = "/services/T000/B000/sl4ck-s3cret-path";
const ROUTING_KEY = "R0UTING-KEY-0123456789abcdef";
const WEBHOOK_SECRET = "whsec-0123456789-secret";
const WEBHOOK_PATH = "/waf/alerts?token=w3bh00k-t0ken";
const SECRETS = ["sl4ck-s3cret-path", ROUTING_KEY, WEBHOOK_SECRET, "w3bh00k-t0ken"];

let service: RunningService;
let redis: Redis;
const receivers: Receiver[] = [];

beforeAll(async () => {
  service = await startRedis();
  redis = new Redis(service.url);
});

afterAll(async () => {
  redis?.disconnect();
  await service?.stop();
});

let logs: LogLine[];

beforeEach(() => {
  logs = captureLogs();
});

afterEach(async () => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

async function receiver(opts: Parameters<typeof startReceiver>[0] = {}): Promise<Receiver> {
  const r = await startReceiver(opts);
  receivers.push(r);
  return r;
}

interface Setup {
  slack: Receiver;
  pagerduty: Receiver;
  webhook: Receiver;
  config: Config;
  listKey: string;
  list: AlertList;
  counts: Record<string, number>;
  /**
   * A fresh alert function instance (its own Redis connection, notifiers and breakers), with
   * its own fetch if given. Its invocations take a request ID (random when not given).
   */
  instance(fetch?: FetchFn): (alerts: Alert[], requestId?: string) => Promise<AlertResult>;
  invoke(alerts: Alert[], requestId?: string): Promise<AlertResult>;
}

/** Three receivers and an alert function wired exactly as `liveDeps` wires it. */
async function setup(
  opts: {
    env?: Record<string, string>;
    slack?: Parameters<typeof startReceiver>[0];
    pagerduty?: Parameters<typeof startReceiver>[0];
    webhook?: Parameters<typeof startReceiver>[0];
    delivery?: Pick<ChannelNotifierOptions, "policy" | "breaker">;
    /** Shorter claims and rate-cap windows than production's, so tests need not wait. */
    leaseMarginMs?: number;
    rateWindowMs?: number;
  } = {},
): Promise<Setup> {
  const [slack, pagerduty, webhook] = await Promise.all([
    receiver({ path: SLACK_PATH, ...opts.slack }),
    receiver({
      path: "/v2/enqueue",
      behaviour: { status: 202, body: '{"status":"success"}' },
      ...opts.pagerduty,
    }),
    receiver({ path: WEBHOOK_PATH, ...opts.webhook }),
  ]);
  const listKey = `test:alerts:${randomUUID()}`;
  const config = loadConfig({
    REDIS_URL: service.url,
    ALERT_LIST_KEY: listKey,
    SLACK_WEBHOOK_URL: slack.url,
    PAGERDUTY_EVENTS_URL: pagerduty.url,
    PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
    ALERT_WEBHOOK_URL: webhook.url,
    ALERT_WEBHOOK_SECRET: WEBHOOK_SECRET,
    NOTIFY_TIMEOUT_MS: "2000",
    NOTIFY_DEADLINE_MS: "10000",
    ...opts.env,
  });
  const counts: Record<string, number> = {};
  const logger = new Logger({ serviceName: "waf-alerter", logLevel: "DEBUG" });
  const listOpts = {
    listKey,
    maxLength: config.ALERT_LIST_MAX,
    retentionSeconds: config.ALERT_LIST_TTL_S,
  };
  const list = new AlertList(redis, listOpts);
  const build = (client: Redis, fetch?: FetchFn) => {
    const handler = createHandler({
      list: new AlertList(client, listOpts),
      notifiers: notifiersFromConfig(config, {
        redis: client,
        logger,
        metrics: { count: (name, n) => (counts[name] = (counts[name] ?? 0) + n) },
        delivery: opts.delivery ?? { policy: { baseDelayMs: 20, maxDelayMs: 100 } },
        fetch,
        leaseMarginMs: opts.leaseMarginMs,
        rateWindowMs: opts.rateWindowMs,
      }),
      logger,
    });
    return (alerts: Alert[], requestId?: string) =>
      handler({ alerts }, fakeContext("waf-alerter", requestId));
  };
  const invoke = build(redis);
  return {
    slack,
    pagerduty,
    webhook,
    config,
    listKey,
    list,
    counts,
    invoke,
    instance: (fetch?: FetchFn) => {
      const client = new Redis(service.url);
      extraClients.push(client);
      return build(client, fetch);
    },
  };
}

const extraClients: Redis[] = [];
afterEach(() => {
  for (const c of extraClients.splice(0)) c.disconnect();
});

function alert(tx: string, extra: Partial<Alert> = {}): Alert {
  return {
    timestamp: 1_700_000_000,
    severity: 95,
    severity_level: "critical",
    client_ip: "203.0.113.9",
    rule_id: "942100",
    categories: ["sqli"],
    uri: "/login?user=admin'--",
    method: "POST",
    tx_id: tx,
    anomaly_score: 65,
    ...extra,
  };
}

async function until<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const bodies = (r: Receiver) => r.requests.map((q) => q.json as Record<string, unknown>);
const logged = (message: string) => logs.filter((l) => l.message === message);

function expectNoSecretsLogged() {
  const text = JSON.stringify(logs);
  for (const s of SECRETS) expect(text).not.toContain(s);
}

describe("notification channels", () => {
  it("sends Slack, PagerDuty and webhook exactly these requests for a critical alert", async () => {
    const s = await setup();
    const res = await s.invoke([alert("tx-1")]);
    expect(res).toEqual({ received: 1, listed: 1, duplicates: 0 });

    const [slack] = s.slack.requests as [ReceivedRequest];
    expect(slack.method).toBe("POST");
    expect(slack.path).toBe(SLACK_PATH);
    expect(slack.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(slack.json).toEqual({
      text: "Critical WAF alert: sqli from 203.0.113.9 (severity 95)",
      blocks: [
        {
          type: "header",
          text: {
            type: "plain_text",
            text: ":rotating_light: Critical WAF alert: sqli from 203.0.113.9 (severity 95)",
            emoji: true,
          },
        },
        {
          type: "section",
          fields: [
            { type: "mrkdwn", text: "*Level*\ncritical" },
            { type: "mrkdwn", text: "*Severity*\n95 (anomaly score 65)" },
            { type: "mrkdwn", text: "*Client IP*\n`203.0.113.9`" },
            { type: "mrkdwn", text: "*Rule*\n`942100` · sqli" },
            { type: "mrkdwn", text: "*Request*\n`POST /login?user=admin'--`" },
            { type: "mrkdwn", text: "*tx_id*\n`tx-1`" },
          ],
        },
        {
          type: "context",
          elements: [{ type: "mrkdwn", text: "2023-11-14T22:13:20Z · waf-event-processor" }],
        },
      ],
    });

    const [pd] = s.pagerduty.requests as [ReceivedRequest];
    expect(pd.method).toBe("POST");
    expect(pd.path).toBe("/v2/enqueue");
    expect(pd.headers["content-type"]).toBe("application/json");
    expect(pd.json).toEqual({
      routing_key: ROUTING_KEY,
      event_action: "trigger",
      dedup_key: "waf-tx-1",
      payload: {
        summary:
          "Critical WAF alert: sqli from 203.0.113.9 (severity 95): rule 942100, POST /login?user=admin'--",
        source: "waf-event-processor",
        severity: "critical",
        timestamp: "2023-11-14T22:13:20Z",
        component: "/login",
        group: "203.0.113.9",
        class: "sqli",
        custom_details: {
          severity: 95,
          severity_level: "critical",
          anomaly_score: 65,
          client_ip: "203.0.113.9",
          rule_id: "942100",
          categories: ["sqli"],
          method: "POST",
          uri: "/login?user=admin'--",
          tx_id: "tx-1",
        },
      },
    });

    const [hook] = s.webhook.requests as [ReceivedRequest];
    expect(hook.method).toBe("POST");
    expect(hook.path).toBe(WEBHOOK_PATH);
    expect(hook.json).toEqual({ type: "alert", id: "tx-1", alert: alert("tx-1") });
    expect(hook.headers).toMatchObject({
      "content-type": "application/json",
      "user-agent": "waf-event-processor",
      "x-waf-event": "alert",
      "x-waf-delivery": webhookDeliveryId("tx-1"),
    });
    // What a receiver does: recompute the HMAC over "<timestamp>.<raw body>", check freshness.
    const ts = Number(hook.headers["x-waf-timestamp"]);
    expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(300);
    const mac = createHmac("sha256", WEBHOOK_SECRET).update(`${ts}.${hook.body}`).digest("hex");
    expect(hook.headers["x-waf-signature"]).toBe(`sha256=${mac}`);

    expect(s.counts).toMatchObject({
      NotificationsSent_slack: 1,
      NotificationsSent_pagerduty: 1,
      NotificationsSent_webhook: 1,
      NotificationsFailed_slack: 0,
    });
    expect(
      logged("notification sent")
        .map((l) => l.channel)
        .sort(),
    ).toEqual(["pagerduty", "slack", "webhook"]);
    expectNoSecretsLogged();
  });

  it("honours each channel's minimum severity (PagerDuty pages from 90)", async () => {
    const s = await setup({ env: { SLACK_MIN_SEVERITY: "80", WEBHOOK_MIN_SEVERITY: "85" } });
    await s.invoke([
      alert("low", { severity: 82, client_ip: "192.0.2.1" }),
      alert("mid", { severity: 89, client_ip: "192.0.2.2" }),
      alert("high", { severity: 90, client_ip: "192.0.2.3" }),
    ]);
    const txOf = (r: Receiver, path: (b: Record<string, unknown>) => unknown) =>
      bodies(r).map(path).sort();
    expect(txOf(s.slack, (b) => JSON.stringify(b).match(/tx_id\*\\n`(\w+)`/)?.[1])).toEqual([
      "high",
      "low",
      "mid",
    ]);
    expect(txOf(s.webhook, (b) => b.id)).toEqual(["high", "mid"]);
    expect(txOf(s.pagerduty, (b) => b.dedup_key)).toEqual(["waf-high"]);
  });

  it("notifies nobody twice for a redelivered alert, however often and however concurrently", async () => {
    const s = await setup();
    await s.invoke([alert("same")]);
    await Promise.all([
      s.invoke([alert("same")]),
      s.instance()([alert("same")]),
      s.invoke([alert("same")]),
    ]);
    expect(s.slack.requests).toHaveLength(1);
    expect(s.pagerduty.requests).toHaveLength(1);
    expect(s.webhook.requests).toHaveLength(1);
    expect(await redis.llen(s.listKey)).toBe(1);
  });

  it("retries PagerDuty after 500s with the same dedup_key, and pages once", async () => {
    const s = await setup({
      pagerduty: {
        behaviour: (_req, n) =>
          n <= 2 ? { status: 500, body: "oops" } : { status: 202, body: "{}" },
      },
    });
    await s.invoke([alert("tx-retry")]);
    expect(s.pagerduty.requests).toHaveLength(3);
    expect(new Set(s.pagerduty.requests.map((r) => r.body)).size).toBe(1);
    expect(bodies(s.pagerduty)[0]?.dedup_key).toBe("waf-tx-retry");
    expect(logged("notification sent").find((l) => l.channel === "pagerduty")).toMatchObject({
      tx_id: "tx-retry",
      attempts: 3,
      status: 202,
    });
  });

  it("does not retry Slack after a timeout (it may have posted), but does retry the webhook", async () => {
    const s = await setup({
      env: { NOTIFY_TIMEOUT_MS: "200", NOTIFY_DEADLINE_MS: "3000" },
      slack: { path: SLACK_PATH, behaviour: (_r, n) => (n === 1 ? "hang" : { status: 200 }) },
      webhook: { path: WEBHOOK_PATH, behaviour: (_r, n) => (n === 1 ? "hang" : { status: 200 }) },
    });
    await s.invoke([alert("tx-amb")]);
    expect(s.slack.requests).toHaveLength(1);
    expect(logged("notification failed").find((l) => l.channel === "slack")).toMatchObject({
      reason: "ambiguous",
      error: "timeout",
      attempts: 1,
    });
    // The webhook's retry carries the same X-WAF-Delivery id, for the receiver to deduplicate.
    expect(s.webhook.requests).toHaveLength(2);
    expect(s.webhook.requests.map((r) => r.headers["x-waf-delivery"])).toEqual([
      webhookDeliveryId("tx-amb"),
      webhookDeliveryId("tx-amb"),
    ]);
    expect(s.webhook.requests[0]?.body).toBe(s.webhook.requests[1]?.body);
  });
});

describe("failing receivers", () => {
  it("a hanging Slack and a webhook answering 500 hold back neither the list nor PagerDuty", async () => {
    const s = await setup({
      env: { NOTIFY_TIMEOUT_MS: "30000", NOTIFY_DEADLINE_MS: "60000" },
      slack: { path: SLACK_PATH, behaviour: "hang" },
      webhook: {
        path: WEBHOOK_PATH,
        // A receiver that echoes what it got must not leak the URL's token into our logs.
        behaviour: (req) => ({ status: 500, body: `internal error for ${req.path}` }),
      },
    });
    let settled = false;
    const running = s.invoke([alert("tx-hang")]).finally(() => {
      settled = true;
    });

    await s.pagerduty.waitFor(1);
    await until("the webhook's retries to end", () =>
      logged("notification failed").some((l) => l.channel === "webhook"),
    );
    await until("the alert to be listed", async () => (await s.list.recent()).length === 1);
    // Slack still has not answered, and its 30 s timeout is far off: the call is still running.
    expect(s.slack.hanging).toBe(1);
    expect(settled).toBe(false);
    expect(s.pagerduty.requests).toHaveLength(1);
    expect(s.webhook.requests).toHaveLength(4);

    s.slack.release();
    expect(await running).toEqual({ received: 1, listed: 1, duplicates: 0 });
    expect(logged("notification failed").map((l) => [l.channel, l.reason, l.attempts])).toEqual(
      expect.arrayContaining([
        ["webhook", "failed", 4],
        ["slack", "ambiguous", 1],
      ]),
    );
    expect(logged("notification failed").find((l) => l.channel === "webhook")?.error).toBe(
      "HTTP 500: internal error for [REDACTED]",
    );
    expect(s.counts).toMatchObject({
      NotificationsSent_pagerduty: 1,
      NotificationsFailed_webhook: 1,
      NotificationsFailed_slack: 1,
    });
    expectNoSecretsLogged();
  });

  it("gives up on receivers that never answer within the deadline, and the invocation succeeds", async () => {
    const s = await setup({
      env: { NOTIFY_TIMEOUT_MS: "150", NOTIFY_DEADLINE_MS: "1000" },
      slack: { path: SLACK_PATH, behaviour: "hang" },
      pagerduty: { path: "/v2/enqueue", behaviour: "hang" },
      webhook: { path: WEBHOOK_PATH, behaviour: "hang" },
    });
    expect(await s.invoke([alert("tx-dead")])).toEqual({ received: 1, listed: 1, duplicates: 0 });
    expect(await s.list.recent()).toHaveLength(1);
    const failed = logged("notification failed");
    expect(failed.map((l) => l.channel).sort()).toEqual(["pagerduty", "slack", "webhook"]);
    for (const l of failed) expect(l).toMatchObject({ reason: "ambiguous", error: "timeout" });
    // PagerDuty deduplicates, so it was retried; every retry carried the same dedup_key.
    expect(s.pagerduty.requests.length).toBeGreaterThan(1);
    expect(new Set(bodies(s.pagerduty).map((b) => b.dedup_key))).toEqual(new Set(["waf-tx-dead"]));
    expectNoSecretsLogged();
  });

  it("opens a failing channel's circuit: later alerts skip it, logged and counted, others still go", async () => {
    const s = await setup({
      slack: { path: SLACK_PATH, behaviour: { status: 503, body: "unavailable" } },
      delivery: {
        policy: { baseDelayMs: 5, maxDelayMs: 10, maxAttempts: 2 },
        breaker: { failureThreshold: 4, cooldownMs: 60_000 },
      },
    });
    await s.invoke([alert("c1", { client_ip: "192.0.2.1" })]);
    await s.invoke([alert("c2", { client_ip: "192.0.2.2" })]);
    expect(s.slack.requests).toHaveLength(4);
    expect(logged("notification channel circuit opened")).toEqual([
      expect.objectContaining({ level: "ERROR", channel: "slack", circuit: "open" }),
    ]);
    await s.invoke([alert("c3", { client_ip: "192.0.2.3" })]);
    expect(s.slack.requests).toHaveLength(4);
    expect(s.pagerduty.requests).toHaveLength(3);
    expect(s.webhook.requests).toHaveLength(3);
    expect(logged("notification failed").at(-1)).toMatchObject({
      channel: "slack",
      tx_id: "c3",
      reason: "circuit-open",
      attempts: 0,
    });
    expect(s.counts).toMatchObject({ NotificationsFailed_slack: 2, NotificationsSkipped_slack: 1 });
  });
});

describe("throttling", () => {
  it("storm: 1,000 critical alerts from 5 IPs list 1,000 entries and notify each channel at most 10 times", async () => {
    const s = await setup({ env: { NOTIFY_DEADLINE_MS: "20000" } });
    const ips = ["203.0.113.1", "203.0.113.2", "198.51.100.3", "2001:db8::4", "192.0.2.5"];
    const alerts = Array.from({ length: 1000 }, (_, i) =>
      alert(`storm-${i}`, {
        client_ip: ips[i % 5] as string,
        // Two categories per IP: (IP, category) is the throttle key.
        ...(i % 10 < 5 ? {} : { rule_id: "941100", categories: ["xss"] }),
      }),
    );
    // Two alert-function instances, 20 concurrent invocations of 50 alerts.
    const a = s.instance();
    const b = s.instance();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b)(alerts.slice(i * 50, i * 50 + 50))),
    );
    expect(await redis.llen(s.listKey)).toBe(1000);
    for (const r of [s.slack, s.pagerduty, s.webhook]) {
      expect(r.requests.length).toBeLessThanOrEqual(10);
      expect(r.requests).toHaveLength(10);
    }
    const keys = bodies(s.pagerduty).map((b) => {
      const p = b.payload as { group: string; class: string };
      return `${p.group} ${p.class}`;
    });
    expect(new Set(keys).size).toBe(10);
    expect(s.counts).toMatchObject({
      NotificationsThrottled_slack: 990,
      NotificationsThrottled_pagerduty: 990,
      NotificationsThrottled_webhook: 990,
    });
  });

  it("summarises a window once, from whichever invocation first finds it ended", async () => {
    const s = await setup({ env: { ALERT_THROTTLE_S: "1" } });
    await s.invoke(
      Array.from({ length: 5 }, (_, i) => alert(`w-${i}`, { client_ip: "198.51.100.50" })),
    );
    expect(s.slack.requests).toHaveLength(1);
    // No alert comes after the storm; an empty invocation (a scheduled tick) finds the window over.
    await until("the summary", async () => {
      await Promise.all([s.invoke([]), s.instance()([])]);
      return s.slack.requests.length === 2;
    });
    await Promise.all([s.invoke([]), s.instance()([]), s.invoke([])]);
    expect(s.slack.requests).toHaveLength(2);
    expect(s.pagerduty.requests).toHaveLength(2);
    expect(s.webhook.requests).toHaveLength(2);
    expect(bodies(s.slack)[1]?.text).toBe(
      "WAF alerts throttled: and 4 more from 198.51.100.50 in 1 s (sqli)",
    );
    expect(bodies(s.pagerduty)[1]).toMatchObject({
      dedup_key: "waf-w-0",
      payload: {
        summary: "WAF alerts throttled: and 4 more from 198.51.100.50 in 1 s (sqli)",
        group: "198.51.100.50",
        class: "sqli",
      },
    });
    expect(bodies(s.webhook)[1]).toMatchObject({
      type: "summary",
      summary: { suppressed: 4, client_ip: "198.51.100.50", category: "sqli", first_tx_id: "w-0" },
    });
    expect(s.webhook.requests[1]?.headers["x-waf-event"]).toBe("summary");
  });

  it("carries the previous window's summary with the first alert of the next window", async () => {
    const s = await setup({ env: { ALERT_THROTTLE_S: "1" } });
    await s.invoke(
      Array.from({ length: 3 }, (_, i) => alert(`p-${i}`, { client_ip: "192.0.2.77" })),
    );
    await new Promise((r) => setTimeout(r, 1100));
    await s.invoke([alert("p-next", { client_ip: "192.0.2.77" })]);
    expect(s.webhook.requests).toHaveLength(2);
    expect(bodies(s.webhook)[1]).toMatchObject({
      type: "alert",
      id: "p-next",
      previous_window: { suppressed: 2, first_tx_id: "p-0", window_seconds: 1 },
    });
    expect(JSON.stringify(bodies(s.slack)[1])).toContain(
      "previous window: and 2 more from 192.0.2.77 in 1 s (sqli)",
    );
    expect(bodies(s.pagerduty)[1]).toMatchObject({
      dedup_key: "waf-p-next",
      payload: { custom_details: { previous_window: { suppressed: 2, first_tx_id: "p-0" } } },
    });
    // Claimed by that alert: no separate summary follows.
    await s.invoke([]);
    expect(s.slack.requests).toHaveLength(2);
  });

  it("sends every alert when ALERT_THROTTLE_S=0", async () => {
    const s = await setup({ env: { ALERT_THROTTLE_S: "0" } });
    await s.invoke([alert("z1"), alert("z2"), alert("z3")]);
    expect(s.slack.requests).toHaveLength(3);
  });
});

describe("row 9: the canonical client and the channel rate cap", () => {
  it("row 9: 50 addresses of one IPv6 /64 notify once, like one IPv4 address; ::ffff:a.b.c.d and a.b.c.d are one client", async () => {
    const s = await setup();
    const v6 = Array.from({ length: 50 }, (_, i) =>
      alert(`v6-${i}`, { client_ip: `2001:db8:aa:bb::${(i + 1).toString(16)}` }),
    );
    const mapped = [
      alert("m-1", { client_ip: "::ffff:198.51.100.77" }),
      alert("m-2", { client_ip: "198.51.100.77" }),
    ];
    await s.invoke([...v6, ...mapped]);
    for (const r of [s.slack, s.pagerduty, s.webhook]) expect(r.requests).toHaveLength(2);
    expect(s.counts).toMatchObject({ NotificationsThrottled_slack: 50 });
    // Canonical addresses name keys only: every alert keeps its address as the record wrote it.
    const listed = await s.list.recent(100);
    expect(new Set(listed.map((a) => a.client_ip)).size).toBe(52);
    expect(
      bodies(s.webhook)
        .map((b) => (b.alert as Alert).client_ip)
        .sort(),
    ).toEqual(["2001:db8:aa:bb::1", "::ffff:198.51.100.77"]);
  });

  it("row 9: ALERT_CHANNEL_RATE_PER_MIN caps each channel, and what it holds back is summarised once", async () => {
    // The cap's window is a minute in production; two seconds here, so the summary comes soon.
    const s = await setup({ env: { ALERT_CHANNEL_RATE_PER_MIN: "5" }, rateWindowMs: 2000 });
    await s.invoke(
      Array.from({ length: 20 }, (_, i) => alert(`r-${i}`, { client_ip: `192.0.2.${i + 1}` })),
    );
    for (const r of [s.slack, s.pagerduty, s.webhook]) expect(r.requests).toHaveLength(5);
    expect(s.counts).toMatchObject({
      NotificationsSent_slack: 5,
      NotificationsThrottled_slack: 15,
      NotificationsThrottled_pagerduty: 15,
    });
    await until("the held-back summary", async () => {
      await s.invoke([]);
      return s.slack.requests.length === 6 && s.webhook.requests.length === 6;
    });
    await s.invoke([]);
    expect(s.slack.requests).toHaveLength(6);
    expect(bodies(s.slack)[5]?.text).toBe(
      "WAF alerts throttled: and 15 more held back by the channel's rate cap in 2 s",
    );
    expect(bodies(s.webhook)[5]).toMatchObject({
      type: "summary",
      summary: { suppressed: 15, client_ip: "*", category: "*", first_tx_id: "r-5" },
    });
    // A new page under the first held-back alert's dedup_key: what was held back was never paged.
    expect(bodies(s.pagerduty)[5]).toMatchObject({ dedup_key: "waf-r-5" });
  });
});

/**
 * A fetch for an instance that stops at PagerDuty, as a process that dies there would: that
 * request never answers, whatever its timeout says, so nothing after it runs. `called` resolves
 * once the request was made.
 */
function stuckAtPagerDuty(s: Setup): { fetch: FetchFn; called: Promise<void> } {
  let made: () => void = () => undefined;
  const called = new Promise<void>((resolve) => {
    made = resolve;
  });
  const stuck: FetchFn = (url, init) => {
    if (url !== s.pagerduty.url) return fetch(url, init);
    made();
    return new Promise<Response>(() => undefined);
  };
  return { fetch: stuck, called };
}

describe("row 12: notifications at least once", () => {
  it("row 12: the retry of an invocation that crashed after listing notifies the channels that did not finish, and no other", async () => {
    const s = await setup({ env: { NOTIFY_TIMEOUT_MS: "500", NOTIFY_DEADLINE_MS: "2000" } });
    // The first attempt dies while its PagerDuty request is in flight.
    const dying = stuckAtPagerDuty(s);
    const requestId = randomUUID();
    void s.instance(dying.fetch)([alert("crash-1")], requestId);
    await dying.called;
    const progress = alertKeys(s.listKey).progress("crash-1");
    await until("Slack and the webhook to finish", async () => {
      const p = await redis.hgetall(progress);
      return p.slack === "done" && p.webhook === "done";
    });
    expect(await s.list.recent()).toHaveLength(1);

    // Lambda (or the local runtime's durable queue) runs it again: same payload, same request ID.
    expect(await s.invoke([alert("crash-1")], requestId)).toEqual({
      received: 1,
      listed: 0,
      duplicates: 1,
    });
    expect(s.pagerduty.requests).toHaveLength(1);
    expect(bodies(s.pagerduty)[0]?.dedup_key).toBe("waf-crash-1");
    expect(s.slack.requests).toHaveLength(1);
    expect(s.webhook.requests).toHaveLength(1);
    expect(await redis.hget(progress, "pagerduty")).toBe("done");

    // Every channel finished: neither a later redelivery nor another retry notifies anyone.
    await s.invoke([alert("crash-1")]);
    await s.invoke([alert("crash-1")], requestId);
    for (const r of [s.slack, s.pagerduty, s.webhook]) expect(r.requests).toHaveLength(1);
    expect(await s.list.recent()).toHaveLength(1);
  });

  it("row 12: a redelivery leaves alone what a live invocation is notifying, and takes over once its claim expired", async () => {
    const s = await setup({
      env: { NOTIFY_TIMEOUT_MS: "300", NOTIFY_DEADLINE_MS: "3000" },
      leaseMarginMs: 0,
    });
    const busy = stuckAtPagerDuty(s);
    void s.instance(busy.fetch)([alert("busy-1")]);
    await busy.called;
    // Another invocation (another request ID) brings the same alert while the first is busy.
    await s.invoke([alert("busy-1")]);
    expect(s.pagerduty.requests).toHaveLength(0);
    // The first one never finishes; once its claim (NOTIFY_DEADLINE_MS) expired, a redelivery
    // completes the notification.
    await until("a redelivery to take over", async () => {
      await s.invoke([alert("busy-1")]);
      return s.pagerduty.requests.length > 0;
    });
    expect(s.pagerduty.requests).toHaveLength(1);
    expect(s.slack.requests).toHaveLength(1);
    expect(s.webhook.requests).toHaveLength(1);
  });

  it("row 12: a throttled alert counts as finished: a redelivered storm is neither notified nor counted twice", async () => {
    const s = await setup({ env: { ALERT_THROTTLE_S: "1" } });
    const storm = Array.from({ length: 4 }, (_, i) => alert(`t-${i}`, { client_ip: "192.0.2.99" }));
    await s.invoke(storm);
    await s.invoke(storm);
    expect(s.slack.requests).toHaveLength(1);
    await until("the summary", async () => {
      await s.invoke([]);
      return s.slack.requests.length === 2;
    });
    expect(bodies(s.slack)[1]?.text).toBe(
      "WAF alerts throttled: and 3 more from 192.0.2.99 in 1 s (sqli)",
    );
  });

  it("row 12: a channel whose receiver stayed down is notified when the alert comes again", async () => {
    const s = await setup({
      webhook: { path: WEBHOOK_PATH, behaviour: { status: 503, body: "down" } },
      delivery: { policy: { baseDelayMs: 5, maxDelayMs: 10, maxAttempts: 2 } },
    });
    await s.invoke([alert("down-1")]);
    expect(s.webhook.requests).toHaveLength(2);
    s.webhook.answer({ status: 200 });
    await s.invoke([alert("down-1")]);
    expect(s.webhook.requests).toHaveLength(3);
    expect(s.slack.requests).toHaveLength(1);
    expect(s.pagerduty.requests).toHaveLength(1);
  });
});

describe("campaign alerts", () => {
  it("are listed with their figures, notified as campaigns, and throttled apart from event alerts", async () => {
    const s = await setup();
    await s.invoke([alert("ev-1"), campaignAlert(1_700_000_100)]);
    const entry = (await s.list.recent()).find(
      (a) => a.tx_id === "campaign:203.0.113.9:1700000100",
    );
    // As the scorer sent it: kind and figures kept.
    expect(entry).toMatchObject({ ...campaignAlert(1_700_000_100), listed_at: expect.any(Number) });
    // Same client as the event alert, notified anyway: its own throttle key.
    expect(s.slack.requests).toHaveLength(2);
    expect(bodies(s.slack).map((b) => b.text)).toContain(
      "Critical WAF campaign: 20 events (18 blocked) from 203.0.113.9 in 5 min",
    );
    expect(
      bodies(s.webhook)
        .map((b) => (b.alert as Alert).kind ?? "event")
        .sort(),
    ).toEqual(["campaign", "event"]);
    // PagerDuty pages from 90; a campaign counts as max(30, critical 80) = 80.
    expect(bodies(s.pagerduty).map((b) => b.dedup_key)).toEqual(["waf-ev-1"]);

    // The next window's campaign from the same client, within ALERT_THROTTLE_S: throttled.
    await s.invoke([campaignAlert(1_700_000_400)]);
    expect(s.slack.requests).toHaveLength(2);
    expect(await s.list.recent()).toHaveLength(3);
  });

  it("page once PagerDuty's minimum is at most the critical threshold", async () => {
    const s = await setup({ env: { PAGERDUTY_MIN_SEVERITY: "80" } });
    await s.invoke([campaignAlert(1_700_000_100)]);
    expect(bodies(s.pagerduty)).toEqual([
      expect.objectContaining({
        dedup_key: "waf-campaign:203.0.113.9:1700000100",
        payload: expect.objectContaining({ class: "campaign", severity: "critical" }),
      }),
    ]);
  });
});

describe("the whole pipeline (npm start's stack)", () => {
  let stack: Stack;
  let client: Redis;
  let slack: Receiver;
  let pagerduty: Receiver;
  let webhook: Receiver;
  let logDir: string;

  beforeAll(async () => {
    [slack, pagerduty, webhook] = await Promise.all([
      startReceiver({ path: SLACK_PATH }),
      startReceiver({ path: "/v2/enqueue", behaviour: { status: 202, body: "{}" } }),
      startReceiver({ path: WEBHOOK_PATH, behaviour: "hang" }),
    ]);
    logDir = mkdtempSync(join(tmpdir(), "waf-notify-e2e-"));
    stack = await startStack({
      logDir,
      redisUrl: service.url,
      env: {
        STREAM_KEY: `notify-e2e:${randomUUID()}`,
        ALERT_LIST_KEY: `notify-e2e:alerts:${randomUUID()}`,
        BATCH_SIZE: "10",
        BATCH_WINDOW_MS: "10",
        LOG_LEVEL: "info",
        SLACK_WEBHOOK_URL: slack.url,
        PAGERDUTY_EVENTS_URL: pagerduty.url,
        PAGERDUTY_ROUTING_KEY: ROUTING_KEY,
        ALERT_WEBHOOK_URL: webhook.url,
        ALERT_WEBHOOK_SECRET: WEBHOOK_SECRET,
        NOTIFY_TIMEOUT_MS: "300",
        NOTIFY_DEADLINE_MS: "1500",
      },
    });
    client = new Redis(stack.redisUrl);
  });

  afterAll(async () => {
    client?.disconnect();
    await stack?.stop();
    await Promise.all([slack, pagerduty, webhook].map((r) => r?.close()));
  });

  it("notifies for critical records from the stream, throttled, despite a hanging webhook", async () => {
    const records = [
      envelope({ id: "e2e-a1", anomaly: 65, rules: ["942100"], ip: "203.0.113.10" }),
      envelope({ id: "e2e-a2", anomaly: 70, rules: ["942100"], ip: "203.0.113.10" }),
      envelope({ id: "e2e-a3", anomaly: 75, rules: ["942100"], ip: "203.0.113.10" }),
      envelope({ id: "e2e-b1", anomaly: 75, rules: ["930120"], ip: "198.51.100.20" }),
      envelope({ id: "e2e-low", anomaly: 10, rules: ["941100"], ip: "192.0.2.30" }),
    ];
    const stream = stack.env.STREAM_KEY as string;
    for (const r of records) await client.xadd(stream, "*", "event", JSON.stringify(r));

    const listKey = stack.env.ALERT_LIST_KEY as string;
    await until("4 alerts listed", async () => (await client.llen(listKey)) === 4, 30_000);
    await slack.waitFor(2, 30_000);
    await pagerduty.waitFor(2, 30_000);
    await webhook.waitFor(2, 30_000);
    await until(
      "the alert queue to drain",
      async () => (await client.xlen("waf:local-lambda:queue:waf-alerter")) === 0,
      30_000,
    );

    // One notification per (IP, category): a1 (first of three from .10) and b1.
    const pdKeys = bodies(pagerduty).map((b) => b.dedup_key);
    expect(pdKeys).toHaveLength(2);
    expect(pdKeys).toContain("waf-e2e-b1");
    expect(pdKeys.filter((k) => String(k).startsWith("waf-e2e-a"))).toHaveLength(1);
    expect(slack.requests).toHaveLength(2);
    for (const body of bodies(slack))
      expect(body.text).toMatch(/^Critical WAF alert: (sqli|lfi) from /);
    // The hanging webhook is retried (receivers deduplicate on X-WAF-Delivery): two deliveries.
    expect(new Set(webhook.requests.map((r) => r.headers["x-waf-delivery"])).size).toBe(2);
    for (const r of webhook.requests) {
      const ts = r.headers["x-waf-timestamp"];
      const mac = createHmac("sha256", WEBHOOK_SECRET).update(`${ts}.${r.body}`).digest("hex");
      expect(r.headers["x-waf-signature"]).toBe(`sha256=${mac}`);
    }

    const runtimeLog = readFileSync(join(logDir, "runtime.log"), "utf8");
    expect(runtimeLog).toContain('"message":"notification failed"');
    expect(runtimeLog).toContain("NotificationsSent_slack");
    for (const s of SECRETS) expect(runtimeLog).not.toContain(s);
  });
});
