/**
 * What each channel sends, byte for byte where it matters: Slack messages, PagerDuty Events
 * API v2 bodies, webhook bodies and signatures, SES commands (a hand-written fake client).
 */
import { createHash, createHmac } from "node:crypto";
import { SendEmailCommand } from "@aws-sdk/client-sesv2";
import { describe, expect, it } from "vitest";
import { campaignAlert } from "../../../test/alerts.ts";
import type { Alert } from "../alert.ts";
import {
  alertNotification,
  type Notification,
  summaryNotification,
  type ThrottleSummary,
} from "../notification.ts";
import { EMAIL_LIMITS, EmailChannel, emailContent, type SesSender } from "./email.ts";
import {
  PAGERDUTY_LIMITS,
  PagerDutyChannel,
  pagerDutyDedupKey,
  pagerDutyEvent,
  pagerDutySeverity,
} from "./pagerduty.ts";
import { SLACK_LIMITS, SlackChannel, slackEscape, slackMessage } from "./slack.ts";
import { signWebhook, WebhookChannel, webhookBody, webhookDeliveryId } from "./webhook.ts";

const alert = (extra: Partial<Alert> = {}): Alert => ({
  timestamp: 1_700_000_000,
  severity: 95,
  severity_level: "critical",
  client_ip: "203.0.113.9",
  rule_id: "942100",
  categories: ["sqli"],
  uri: "/login?user=admin'--",
  method: "POST",
  tx_id: "tx-1",
  anomaly_score: 65,
  ...extra,
});

const prev: ThrottleSummary = {
  clientIp: "203.0.113.9",
  category: "sqli",
  suppressed: 37,
  windowStart: 1_699_999_700_000,
  windowSeconds: 300,
  firstTxId: "tx-0",
};

const signal = () => new AbortController().signal;

/** A fetch that records calls and answers with `status`. */
function fakeFetch(status = 200) {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  const fn = async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(status === 204 ? null : "ok", { status });
  };
  return { fn, calls };
}

describe("Slack message", () => {
  it("shows level, severity, IP, rule and category, request and tx_id", () => {
    expect(slackMessage(alertNotification(alert()))).toEqual({
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
  });

  it("adds the previous window's summary to the first alert of a new window", () => {
    const msg = slackMessage(alertNotification(alert(), prev));
    expect(msg.blocks.at(-1)).toEqual({
      type: "context",
      elements: [
        {
          type: "mrkdwn",
          text: ":mute: previous window: and 37 more from 203.0.113.9 in 5 min (sqli)",
        },
      ],
    });
  });

  it("sends a throttle summary as one short message", () => {
    expect(slackMessage(summaryNotification(prev))).toEqual({
      text: "WAF alerts throttled: and 37 more from 203.0.113.9 in 5 min (sqli)",
      blocks: [
        {
          type: "section",
          text: {
            type: "mrkdwn",
            text: ":mute: *WAF alerts throttled* and 37 more from 203.0.113.9 in 5 min (sqli)",
          },
        },
        {
          type: "context",
          elements: [
            { type: "mrkdwn", text: "window from 2023-11-14T22:08:20Z · first alert tx_id `tx-0`" },
          ],
        },
      ],
    });
  });

  it("escapes attacker-controlled text: no @channel, no forged links, no broken code spans", () => {
    const msg = JSON.stringify(
      slackMessage(
        alertNotification(alert({ uri: "/x?<!channel>&<https://evil|click>`*bold*`\nline2" })),
      ),
    );
    expect(msg).not.toContain("<!channel>");
    expect(msg).not.toContain("<https://evil");
    expect(msg).toContain("&lt;!channel&gt;&amp;&lt;https://evil|click&gt;'*bold*' line2");
    expect(slackEscape("a<b>&c")).toBe("a&lt;b&gt;&amp;c");
  });

  it("POSTs JSON to the webhook URL and counts any 2xx as success", async () => {
    const f = fakeFetch(200);
    const ch = new SlackChannel({
      webhookUrl: "https://hooks.slack.com/services/T0/B0/secret",
      minSeverity: 80,
      fetch: f.fn,
    });
    expect(await ch.send(alertNotification(alert()), signal())).toEqual({ ok: true, status: 200 });
    expect(f.calls[0]?.url).toBe("https://hooks.slack.com/services/T0/B0/secret");
    expect(f.calls[0]?.init.method).toBe("POST");
    expect(JSON.parse(String(f.calls[0]?.init.body))).toEqual(
      slackMessage(alertNotification(alert())),
    );
    expect(ch.idempotent).toBe(false);
    expect(ch.secrets).toContain("/services/T0/B0/secret");
  });
});

describe("PagerDuty event", () => {
  it("triggers with routing_key, a tx_id dedup_key and a mapped severity", () => {
    expect(pagerDutyEvent(alertNotification(alert()), "RK", "waf-event-processor")).toEqual({
      routing_key: "RK",
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
  });

  it("sends a summary under the window's first alert's dedup_key: appended, not a new page", () => {
    const ev = pagerDutyEvent(summaryNotification(prev), "RK", "waf");
    expect(ev.dedup_key).toBe("waf-tx-0");
    expect(ev.payload.summary).toBe(
      "WAF alerts throttled: and 37 more from 203.0.113.9 in 5 min (sqli)",
    );
    expect(ev.payload.custom_details).toEqual({
      throttled: {
        client_ip: "203.0.113.9",
        category: "sqli",
        suppressed: 37,
        window_start: "2023-11-14T22:08:20Z",
        window_seconds: 300,
        first_tx_id: "tx-0",
      },
    });
  });

  it.each([
    ["critical", "critical"],
    ["high", "error"],
    ["medium", "warning"],
    ["low", "info"],
  ] as const)("maps level %s to PagerDuty severity %s", (level, expected) => {
    expect(pagerDutySeverity(level)).toBe(expected);
  });

  it("keeps dedup_key within 255 characters, stable for one tx_id", () => {
    const long = "x".repeat(400);
    expect(pagerDutyDedupKey(long)).toMatch(/^waf-sha256-[0-9a-f]{64}$/);
    expect(pagerDutyDedupKey(long)).toBe(pagerDutyDedupKey(long));
    expect(pagerDutyDedupKey("a".repeat(251))).toBe(`waf-${"a".repeat(251)}`);
  });

  it("cuts the summary to PagerDuty's 1024 characters", () => {
    const ev = pagerDutyEvent(alertNotification(alert({ uri: `/${"a".repeat(3000)}` })), "RK", "w");
    expect(ev.payload.summary.length).toBe(1024);
  });

  it("is idempotent (retries after timeouts are safe) and keeps the routing key secret", () => {
    const ch = new PagerDutyChannel({
      eventsUrl: "https://events.pagerduty.com/v2/enqueue",
      routingKey: "R0UT1NGKEY",
      minSeverity: 90,
    });
    expect(ch.idempotent).toBe(true);
    expect(ch.secrets).toEqual(["R0UT1NGKEY"]);
    expect(ch.minSeverity).toBe(90);
  });
});

describe("webhook", () => {
  it("sends the alert as JSON with its id and the previous window when there is one", () => {
    expect(webhookBody(alertNotification(alert()))).toEqual({
      type: "alert",
      id: "tx-1",
      alert: alert(),
    });
    expect(webhookBody(alertNotification(alert(), prev))).toEqual({
      type: "alert",
      id: "tx-1",
      alert: alert(),
      previous_window: {
        text: "and 37 more from 203.0.113.9 in 5 min (sqli)",
        suppressed: 37,
        window_start: 1_699_999_700,
        window_seconds: 300,
        first_tx_id: "tx-0",
      },
    });
    expect(webhookBody(summaryNotification(prev))).toEqual({
      type: "summary",
      id: "summary:sqli:203.0.113.9:1699999700000",
      summary: {
        text: "and 37 more from 203.0.113.9 in 5 min (sqli)",
        client_ip: "203.0.113.9",
        category: "sqli",
        suppressed: 37,
        window_start: 1_699_999_700,
        window_seconds: 300,
        first_tx_id: "tx-0",
      },
    });
  });

  it("signs timestamp.body with HMAC-SHA256 in X-WAF-Signature", async () => {
    const f = fakeFetch(204);
    const ch = new WebhookChannel({
      url: "https://hooks.example/waf?token=abc",
      secret: "s3cret",
      minSeverity: 80,
      fetch: f.fn,
      now: () => 1_700_000_123_456,
    });
    expect(await ch.send(alertNotification(alert()), signal())).toEqual({ ok: true, status: 204 });
    const init = f.calls[0]?.init as RequestInit & { headers: Record<string, string> };
    const body = String(init.body);
    expect(JSON.parse(body)).toEqual(webhookBody(alertNotification(alert())));
    const expected = createHmac("sha256", "s3cret").update(`1700000123.${body}`).digest("hex");
    expect(init.headers).toEqual({
      "content-type": "application/json",
      "user-agent": "waf-event-processor",
      "x-waf-event": "alert",
      "x-waf-delivery": createHash("sha256").update("tx-1").digest("hex"),
      "x-waf-timestamp": "1700000123",
      "x-waf-signature": `sha256=${expected}`,
    });
    expect(signWebhook("s3cret", 1_700_000_123, body)).toBe(`sha256=${expected}`);
    expect(ch.secrets).toEqual(["https://hooks.example/waf?token=abc", "/waf?token=abc", "s3cret"]);
  });

  it("sends no signature without a secret, and a hashed delivery id whatever the tx_id holds", async () => {
    const f = fakeFetch(200);
    const ch = new WebhookChannel({ url: "https://hooks.example/", minSeverity: 80, fetch: f.fn });
    const tx = "tx é\r\nX-Evil: 1";
    await ch.send(alertNotification(alert({ tx_id: tx })), signal());
    const headers = (f.calls[0]?.init.headers ?? {}) as Record<string, string>;
    expect(headers["x-waf-signature"]).toBeUndefined();
    expect(headers["x-waf-delivery"]).toBe(createHash("sha256").update(tx).digest("hex"));
    expect(headers["x-waf-delivery"]).toBe(webhookDeliveryId(tx));
  });
});

describe("email (SES v2)", () => {
  /** A hand-written fake of the SESv2Client's `send`. */
  function fakeSes(fail?: unknown): SesSender & { commands: SendEmailCommand[] } {
    const commands: SendEmailCommand[] = [];
    return {
      commands,
      async send(command) {
        commands.push(command);
        if (fail) throw fail;
        return { MessageId: "m-1" };
      },
    };
  }

  const channel = (client: SesSender) =>
    new EmailChannel({
      client,
      from: "WAF <waf@example.com>",
      to: ["soc@example.com", "oncall@example.com"],
      minSeverity: 90,
    });

  it("sends a plain-text SendEmailCommand to every recipient", async () => {
    const ses = fakeSes();
    expect(await channel(ses).send(alertNotification(alert()), signal())).toEqual({
      ok: true,
      status: 200,
    });
    expect(ses.commands[0]).toBeInstanceOf(SendEmailCommand);
    expect(ses.commands[0]?.input).toEqual({
      FromEmailAddress: "WAF <waf@example.com>",
      Destination: { ToAddresses: ["soc@example.com", "oncall@example.com"] },
      Content: {
        Simple: {
          Subject: {
            Data: "[WAF critical] Critical WAF alert: sqli from 203.0.113.9 (severity 95)",
            Charset: "UTF-8",
          },
          Body: {
            Text: {
              Data: [
                "Critical WAF alert: sqli from 203.0.113.9 (severity 95)",
                "",
                "Level:           critical",
                "Severity:        95 (anomaly score 65)",
                "Client IP:       203.0.113.9",
                "Rule:            942100 (sqli)",
                "Request:         POST /login?user=admin'--",
                "tx_id:           tx-1",
                "Time:            2023-11-14T22:13:20Z",
              ].join("\n"),
              Charset: "UTF-8",
            },
          },
        },
      },
    });
  });

  it("keeps subjects on one line whatever the request held", () => {
    const { subject } = emailContent(alertNotification(alert({ client_ip: "1.2.3.4\r\nBcc: x" })));
    expect(subject).not.toMatch(/[\r\n]/);
    expect(emailContent(summaryNotification(prev)).subject).toBe(
      "[WAF] alerts throttled: and 37 more from 203.0.113.9 in 5 min (sqli)",
    );
  });

  it.each([
    [{ name: "ThrottlingException", $metadata: { httpStatusCode: 429 } }, "failed"],
    [{ name: "InternalFailure", $metadata: { httpStatusCode: 500 } }, "failed"],
    [{ name: "MessageRejected", $metadata: { httpStatusCode: 400 } }, "rejected"],
    [{ name: "TimeoutError" }, "ambiguous"],
    [{ name: "ECONNRESET" }, "ambiguous"],
  ])("classifies SES error %j as %s", async (err, kind) => {
    const r = await channel(fakeSes(err)).send(alertNotification(alert()), signal());
    expect(r).toMatchObject({ ok: false, kind });
  });

  it("is not idempotent: a timed-out send is not retried", () => {
    expect(channel(fakeSes()).idempotent).toBe(false);
  });
});

describe("every channel", () => {
  const notifications: Notification[] = [
    alertNotification(alert()),
    alertNotification(alert(), prev),
    summaryNotification(prev),
  ];
  it.each(notifications)(
    "formats %# without throwing and without control characters in headlines",
    (n) => {
      expect(slackMessage(n).text).not.toMatch(/[\r\n]/);
      expect(pagerDutyEvent(n, "k", "s").payload.summary).not.toMatch(/[\r\n]/);
      expect(emailContent(n).subject).not.toMatch(/[\r\n]/);
      expect(webhookBody(n).id).toBe(n.id);
    },
  );
});

describe("issue 12: request text in every channel", () => {
  /** An alert with `text` in every field a request writes. */
  const everywhere = (text: string) =>
    alert({
      uri: text,
      method: text,
      rule_id: text,
      tx_id: text,
      client_ip: text,
      categories: [text],
    });

  const fields = (msg: ReturnType<typeof slackMessage>) =>
    msg.blocks.flatMap((b) => (b.fields as Array<{ text: string }> | undefined) ?? []);

  it("row 5: a URI of 600 `&` stays within Slack's field limit, escaped, never cut inside an escape", () => {
    const msg = slackMessage(alertNotification(alert({ uri: `/x?${"&".repeat(600)}` })));
    for (const f of fields(msg)) expect(f.text.length).toBeLessThanOrEqual(SLACK_LIMITS.field);
    const request = fields(msg).find((f) => f.text.startsWith("*Request*"))?.text ?? "";
    expect(request).toContain("&amp;".repeat(100));
    // Every `&` left starts a whole escape.
    expect(request.replace(/&(amp|lt|gt);/g, "")).not.toContain("&");
  });

  it("row 5: keeps every Block Kit text within its limit, whatever the alert holds", () => {
    const hostile = "<&>`*_~\n\u2028".repeat(5000);
    const msg = slackMessage(
      alertNotification(everywhere(hostile), { ...prev, clientIp: hostile, category: hostile }),
    );
    expect(msg.text.length).toBeLessThanOrEqual(SLACK_LIMITS.text);
    const header = msg.blocks[0]?.text as { text: string };
    expect(header.text.length).toBeLessThanOrEqual(SLACK_LIMITS.header);
    expect(fields(msg).length).toBeLessThanOrEqual(SLACK_LIMITS.fields);
    for (const f of fields(msg)) expect(f.text.length).toBeLessThanOrEqual(SLACK_LIMITS.field);
    for (const b of msg.blocks.filter((x) => x.type === "context")) {
      for (const e of b.elements as Array<{ text: string }>) {
        expect(e.text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
      }
    }
    // mrkdwn (everything but the header's plain_text) carries no raw `<` or `>`.
    const mrkdwn = JSON.stringify({
      text: msg.text,
      fields: fields(msg),
      rest: msg.blocks.slice(2),
    });
    expect(mrkdwn).not.toMatch(/<|>/);
  });

  it("row 10: tx_ids sharing a 600-character prefix get different X-WAF-Delivery ids", async () => {
    const f = fakeFetch(200);
    const ch = new WebhookChannel({ url: "https://hooks.example/", minSeverity: 80, fetch: f.fn });
    const prefix = "p".repeat(600);
    await ch.send(alertNotification(alert({ tx_id: `${prefix}-a` })), signal());
    await ch.send(alertNotification(alert({ tx_id: `${prefix}-b` })), signal());
    const ids = f.calls.map((c) => (c.init.headers as Record<string, string>)["x-waf-delivery"]);
    expect(ids[0]).not.toBe(ids[1]);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{64}$/);
  });

  it("row 4: a lone surrogate in the tx_id gives a plain delivery header and a well-formed body", async () => {
    const f = fakeFetch(200);
    const ch = new WebhookChannel({ url: "https://hooks.example/", minSeverity: 80, fetch: f.fn });
    const r = await ch.send(alertNotification(alert({ tx_id: "tx-\uD800" })), signal());
    expect(r).toEqual({ ok: true, status: 200 });
    const headers = f.calls[0]?.init.headers as Record<string, string>;
    for (const v of Object.values(headers)) expect(v).toMatch(/^[\x20-\x7e]+$/);
    expect(() =>
      new TextDecoder("utf-8", { fatal: true }).decode(
        new TextEncoder().encode(String(f.calls[0]?.init.body)),
      ),
    ).not.toThrow();
  });

  it("keeps PagerDuty's fields within the Events API's limits", () => {
    const hostile = "x\r\n".repeat(3000);
    const ev = pagerDutyEvent(alertNotification(everywhere(hostile)), "RK", "waf-event-processor");
    expect(ev.dedup_key.length).toBeLessThanOrEqual(PAGERDUTY_LIMITS.dedupKey);
    expect(ev.payload.summary.length).toBeLessThanOrEqual(PAGERDUTY_LIMITS.summary);
    for (const v of [ev.payload.component, ev.payload.group, ev.payload.class, ev.payload.source]) {
      expect(v.length).toBeLessThanOrEqual(PAGERDUTY_LIMITS.field);
      expect(v).not.toMatch(/[\r\n]/);
    }
    expect(ev.payload.summary).not.toMatch(/[\r\n]/);
  });

  it("keeps an email subject on one bounded line", () => {
    const { subject, text } = emailContent(
      alertNotification(alert({ client_ip: "1.2.3.4\r\nBcc: x", uri: "é".repeat(50_000) })),
    );
    expect(subject).not.toMatch(/[\r\n]/);
    expect(subject.length).toBeLessThanOrEqual(EMAIL_LIMITS.subject);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(EMAIL_LIMITS.bodyBytes);
  });
});

describe("campaign alerts in every channel", () => {
  const campaign = campaignAlert(1_700_000_100, {
    categories: ["sqli", "xss", "rce"],
    events: 25,
    blocked: 20,
    top_rules: [
      { rule_id: "942100", events: 12 },
      { rule_id: "941100", events: 5 },
    ],
  });

  it("Slack says it is a campaign: events, blocked, categories, top rules, window", () => {
    const msg = slackMessage(alertNotification(campaign));
    expect(msg.text).toBe(
      "Critical WAF campaign: 25 events (20 blocked) from 203.0.113.9 in 5 min",
    );
    const text = JSON.stringify(msg);
    expect(text).toContain("*Campaign*\\n25 events, 20 blocked, in 5 min");
    expect(text).toContain("*Categories*\\nsqli, xss, rce");
    expect(text).toContain("*Top rules*\\n`942100 ×12, 941100 ×5`");
    expect(text).toContain("*Window*\\nfrom 2023-11-14T22:15:00Z");
    expect(text).not.toContain("*Request*");
  });

  it("email says it is a campaign", () => {
    const { subject, text } = emailContent(alertNotification(campaign));
    expect(subject).toBe(
      "[WAF critical campaign] Critical WAF campaign: 25 events (20 blocked) from 203.0.113.9 in 5 min",
    );
    expect(text).toContain("Events:          25 (20 blocked by the firewall)");
    expect(text).toContain("Window:          2023-11-14T22:15:00Z, 5 min");
    expect(text).toContain("Categories:      sqli, xss, rce");
    expect(text).toContain("Top rules:       942100 (12), 941100 (5)");
  });

  it("PagerDuty pages it as critical, class campaign, with its figures", () => {
    const ev = pagerDutyEvent(alertNotification(campaign), "RK", "waf");
    expect(ev.dedup_key).toBe("waf-campaign:203.0.113.9:1700000100");
    expect(ev.payload).toMatchObject({
      severity: "critical",
      class: "campaign",
      group: "203.0.113.9",
      summary:
        "Critical WAF campaign: 25 events (20 blocked) from 203.0.113.9 in 5 min: sqli, xss, rce; top rules 942100 ×12, 941100 ×5",
      custom_details: { kind: "campaign", events: 25, blocked: 20, window_seconds: 300 },
    });
  });

  it("the webhook sends the campaign alert whole", () => {
    expect(webhookBody(alertNotification(campaign))).toEqual({
      type: "alert",
      id: campaign.tx_id,
      alert: campaign,
    });
  });
});
