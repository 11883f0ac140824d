/**
 * One channel's notifier with a fake channel, a fake throttle and a fake clock: minimum
 * severity, throttle decisions and summaries, fail-open when the throttle is down, logs
 * without secrets, per-channel metric names, and never a thrown error.
 */
import { describe, expect, it } from "vitest";
import { campaignAlert } from "../../test/alerts.ts";
import { fakeClock } from "../../test/clock.ts";
import type { Logger } from "../lib/logger.ts";
import type { Alert } from "./alert.ts";
import type { Channel } from "./channels/channel.ts";
import { WebhookChannel } from "./channels/webhook.ts";
import type { AttemptResult } from "./delivery.ts";
import type { Notification, ThrottleSummary } from "./notification.ts";
import { ChannelNotifier, metricName } from "./notifier.ts";
import type { Throttle, ThrottleDecision } from "./throttle.ts";

const alert = (tx: string, extra: Partial<Alert> = {}): Alert => ({
  timestamp: 1_700_000_000,
  severity: 95,
  severity_level: "critical",
  client_ip: "203.0.113.9",
  rule_id: "942100",
  categories: ["sqli"],
  uri: "/",
  method: "GET",
  tx_id: tx,
  anomaly_score: 65,
  ...extra,
});

const SECRET = "https://hooks.example/T0/B0/s3cr3t-path";

function fakeChannel(
  answer: (n: Notification, i: number) => AttemptResult = () => ({ ok: true, status: 200 }),
) {
  const sent: Notification[] = [];
  const channel: Channel & { sent: Notification[] } = {
    name: "fake",
    minSeverity: 90,
    idempotent: false,
    secrets: [SECRET],
    sent,
    async send(n) {
      sent.push(n);
      return answer(n, sent.length);
    },
  };
  return channel;
}

function recorder() {
  const lines: Array<{ level: string; message: string } & Record<string, unknown>> = [];
  const at =
    (level: string) =>
    (message: string, ...extra: Array<Record<string, unknown>>) =>
      lines.push({ level, message, ...Object.assign({}, ...extra) });
  const logger: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
  const counts: Record<string, number> = {};
  const metrics = { count: (name: string, n: number) => (counts[name] = (counts[name] ?? 0) + n) };
  return { lines, logger, counts, metrics };
}

/** A throttle that sends the first alert per client IP ever, and hands out given summaries. */
function fakeThrottle(summaries: ThrottleSummary[] = [], fail = false): Throttle {
  const seen = new Set<string>();
  return {
    async admit(_channel, alerts): Promise<ThrottleDecision[]> {
      if (fail) throw new Error("connect ECONNREFUSED 127.0.0.1:6379");
      return alerts.map((a) => {
        const send = !seen.has(a.client_ip);
        seen.add(a.client_ip);
        return { alert: a, send };
      });
    },
    async due() {
      if (fail) throw new Error("connect ECONNREFUSED 127.0.0.1:6379");
      return summaries.splice(0);
    },
    async settle() {
      if (fail) throw new Error("connect ECONNREFUSED 127.0.0.1:6379");
    },
  };
}

describe("ChannelNotifier", () => {
  it("sends only alerts at or above the channel's minimum severity", async () => {
    const ch = fakeChannel();
    const r = recorder();
    const n = new ChannelNotifier({
      channel: ch,
      logger: r.logger,
      metrics: r.metrics,
      clock: fakeClock(),
    });
    await n.notify([
      alert("a", { severity: 89 }),
      alert("b", { severity: 90 }),
      alert("c", { severity: 140 }),
    ]);
    expect(ch.sent.map((x) => x.id)).toEqual(["b", "c"]);
    expect(r.counts).toEqual({
      NotificationsSent_fake: 2,
      NotificationsFailed_fake: 0,
      NotificationsSkipped_fake: 0,
      NotificationsThrottled_fake: 0,
    });
  });

  it("sends what the throttle lets through, then the summaries that came due", async () => {
    const ch = fakeChannel();
    const r = recorder();
    const summary: ThrottleSummary = {
      clientIp: "198.51.100.1",
      category: "xss",
      suppressed: 4,
      windowStart: 0,
      windowSeconds: 60,
      firstTxId: "old",
    };
    const n = new ChannelNotifier({
      channel: ch,
      throttle: fakeThrottle([summary]),
      logger: r.logger,
      metrics: r.metrics,
      clock: fakeClock(),
    });
    await n.notify([alert("a"), alert("b"), alert("c", { client_ip: "192.0.2.1" })]);
    expect(ch.sent.map((x) => x.id)).toEqual(["a", "c", "summary:xss:198.51.100.1:0"]);
    expect(r.counts[metricName("Throttled", "fake")]).toBe(1);
    expect(r.counts[metricName("Sent", "fake")]).toBe(3);
  });

  it("fails open but bounded when the throttle is down: the first alert per IP and category", async () => {
    const ch = fakeChannel();
    const r = recorder();
    const n = new ChannelNotifier({
      channel: ch,
      throttle: fakeThrottle([], true),
      logger: r.logger,
      clock: fakeClock(),
    });
    await n.notify([
      alert("a"),
      alert("b"),
      alert("c", { rule_id: "941100", categories: ["xss"] }),
      alert("d", { client_ip: "192.0.2.1" }),
    ]);
    expect(ch.sent.map((x) => x.id)).toEqual(["a", "c", "d"]);
    expect(r.lines.filter((l) => l.level === "error").map((l) => l.message)).toEqual([
      "notification throttle unavailable: sending the first alert per client IP and category",
      "notification throttle summaries unavailable",
      "notification progress unavailable",
    ]);
  });

  it("logs a failed delivery with reason and attempts, never the channel's secrets", async () => {
    const ch = fakeChannel(() => ({
      ok: false,
      kind: "rejected",
      status: 404,
      detail: `HTTP 404: no such hook ${SECRET}`,
    }));
    const r = recorder();
    const n = new ChannelNotifier({
      channel: ch,
      logger: r.logger,
      metrics: r.metrics,
      clock: fakeClock(),
    });
    await n.notify([alert("a")]);
    expect(r.lines).toContainEqual({
      level: "error",
      message: "notification failed",
      channel: "fake",
      kind: "alert",
      tx_id: "a",
      client_ip: "203.0.113.9",
      severity: 95,
      rule_id: "942100",
      attempts: 1,
      reason: "rejected",
      status: 404,
      error: "HTTP 404: no such hook [REDACTED]",
    });
    expect(JSON.stringify(r.lines)).not.toContain("s3cr3t");
    expect(r.counts[metricName("Failed", "fake")]).toBe(1);
  });

  it("opens the circuit after repeated failures, then skips without calling the receiver", async () => {
    const ch = fakeChannel(() => ({ ok: false, kind: "failed", status: 500, detail: "HTTP 500" }));
    const r = recorder();
    const n = new ChannelNotifier({
      channel: ch,
      logger: r.logger,
      metrics: r.metrics,
      clock: fakeClock(),
      policy: { maxAttempts: 2 },
      breaker: { failureThreshold: 4, cooldownMs: 60_000 },
      concurrency: 1,
    });
    await n.notify([alert("a"), alert("b")]);
    expect(n.breaker.state).toBe("open");
    await n.notify([alert("c")]);
    expect(ch.sent.map((x) => x.id)).toEqual(["a", "a", "b", "b"]);
    expect(r.counts[metricName("Skipped", "fake")]).toBe(1);
    expect(r.lines).toContainEqual(
      expect.objectContaining({
        level: "error",
        message: "notification channel circuit opened",
        channel: "fake",
      }),
    );
  });

  it("never throws, even when the channel does", async () => {
    const ch = fakeChannel(() => {
      throw new Error("bug");
    });
    const r = recorder();
    const n = new ChannelNotifier({ channel: ch, logger: r.logger, clock: fakeClock() });
    await expect(n.notify([alert("a")])).resolves.toBeUndefined();
    expect(r.lines.at(-1)).toMatchObject({ message: "notification failed", reason: "invalid" });
    expect(n.breaker.state).toBe("closed");
  });

  it("sends nothing and asks only for due summaries when called without alerts", async () => {
    const ch = fakeChannel();
    const r = recorder();
    const n = new ChannelNotifier({
      channel: ch,
      throttle: fakeThrottle(),
      logger: r.logger,
      clock: fakeClock(),
    });
    await n.notify([]);
    expect(ch.sent).toEqual([]);
  });

  it("row 4: alerts whose tx_id holds a lone surrogate reach the webhook and leave its circuit closed", async () => {
    const requests: RequestInit[] = [];
    const channel = new WebhookChannel({
      url: "https://hooks.example/waf",
      minSeverity: 80,
      fetch: async (_url, init) => {
        requests.push(init);
        return new Response("ok", { status: 200 });
      },
    });
    const r = recorder();
    const n = new ChannelNotifier({
      channel,
      logger: r.logger,
      metrics: r.metrics,
      clock: fakeClock(),
      breaker: { failureThreshold: 2, cooldownMs: 60_000 },
    });
    await n.notify([alert("a\uD800"), alert("b\uDFFF")]);
    await n.notify([alert("c")]);
    expect(requests).toHaveLength(3);
    expect(n.breaker.state).toBe("closed");
    expect(r.counts[metricName("Sent", "webhook")]).toBe(3);
  });

  it("compares a campaign's severity, at least the critical threshold, with the channel's minimum", async () => {
    const campaign = (tx: string) => campaignAlert(0, { tx_id: tx, severity: 30 });
    const r = recorder();
    const strict = fakeChannel(); // minimum 90
    await new ChannelNotifier({ channel: strict, logger: r.logger, clock: fakeClock() }).notify([
      campaign("c1"),
    ]);
    expect(strict.sent).toEqual([]);
    const lenient = { ...fakeChannel(), minSeverity: 80 };
    await new ChannelNotifier({
      channel: lenient,
      logger: r.logger,
      clock: fakeClock(),
      criticalSeverity: 80,
    }).notify([campaign("c2"), alert("e", { severity: 30 })]);
    expect(lenient.sent.map((x) => x.id)).toEqual(["c2"]);
  });

  it("offers redelivered alerts to the throttle, marks done the deliveries that are over and gives the others back", async () => {
    const answers: Record<string, AttemptResult> = {
      ok: { ok: true, status: 200 },
      refused: { ok: false, kind: "rejected", status: 400, detail: "HTTP 400" },
      down: { ok: false, kind: "failed", status: 503, detail: "HTTP 503" },
      timeout: { ok: false, kind: "ambiguous", detail: "timeout" },
    };
    const ch = fakeChannel((n) => answers[n.id] as AttemptResult);
    const offered: Array<{ tx: string; owner: string }> = [];
    const settled: Array<{ owner: string; done: readonly string[]; undone: readonly string[] }> =
      [];
    const throttle: Throttle = {
      async admit(_c, alerts, owner) {
        for (const a of alerts) offered.push({ tx: a.tx_id, owner });
        return alerts.map((a) => ({ alert: a, send: true }));
      },
      async settle(_c, owner, outcome) {
        settled.push({ owner, ...outcome });
      },
      async due() {
        return [];
      },
    };
    const r = recorder();
    await new ChannelNotifier({
      channel: ch,
      throttle,
      logger: r.logger,
      clock: fakeClock(),
      policy: { maxAttempts: 1 },
    }).notify([alert("ok"), alert("down")], {
      redelivered: [alert("refused"), alert("timeout")],
      owner: "req-1",
    });
    expect(offered).toEqual(
      ["ok", "down", "refused", "timeout"].map((tx) => ({ tx, owner: "req-1" })),
    );
    // A refusal is final; a timeout on a channel that does not deduplicate may have posted;
    // a receiver that is down has not: its claim is given back for the next invocation.
    expect(settled).toEqual([
      { owner: "req-1", done: ["ok", "refused", "timeout"], undone: ["down"] },
    ]);
  });
});
