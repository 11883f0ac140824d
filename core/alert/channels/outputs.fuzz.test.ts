/**
 * Fuzzing the output side (issue 12): real audit records with request text replaced by hostile
 * text (long, escaped, lone surrogates, CR/LF, mrkdwn and markup), scored, turned into event and
 * campaign alerts and throttle summaries, and sent through every channel with a recording fetch
 * and a fake SES client. What goes on the wire must always be valid — JSON that parses,
 * well-formed UTF-8, headers and subjects on one line — and within each channel's limits.
 * Short form here (it runs in `npm test`); `FUZZ_RUNS=10000 npx vitest run <this file>` searches longer.
 */
import type { SendEmailCommand } from "@aws-sdk/client-sesv2";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  corazaText,
  corpusLines,
  envelope,
  fixtureFiles,
  fixtureLines,
} from "../../../test/fixtures/records.ts";
import { loadConfig } from "../../config.ts";
import { scoreRecord, scorerSettingsFrom } from "../../scorer.ts";
import { type Alert, boundAlert, MAX_ALERT_BYTES, toAlert } from "../alert.ts";
import { type CampaignAlert, canonicalClient } from "../campaign.ts";
import {
  alertNotification,
  type Notification,
  primaryCategory,
  summaryNotification,
  type ThrottleSummary,
} from "../notification.ts";
import { isWellFormed } from "../text.ts";
import { EMAIL_LIMITS, EmailChannel } from "./email.ts";
import { PAGERDUTY_LIMITS, PagerDutyChannel } from "./pagerduty.ts";
import { SLACK_LIMITS, SlackChannel } from "./slack.ts";
import { WebhookChannel } from "./webhook.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 250);

const settings = scorerSettingsFrom(loadConfig({}));

/** The real records that score (a sample of the CRS corpus too): what a mutation starts from. */
const seeds: unknown[] = [
  ...fixtureFiles().flatMap((f) => fixtureLines(f)),
  ...["crs3-pl1.jsonl.gz", "crs4-pl1-sample.jsonl.gz"].flatMap((f) =>
    corpusLines(f)
      .filter((_l, i) => i % 61 === 0)
      .map((l) => l.toString("utf8")),
  ),
  JSON.stringify(envelope({ anomaly: 65 })),
  corazaText({}),
]
  .filter((line) => scoreRecord(line, settings).ok)
  .map((line) => JSON.parse(line) as unknown);

/** Keys whose string values the request writes (or that end up in alerts). */
const REQUEST_KEYS = new Set(["uri", "method", "id", "unique_id", "ruleId", "rule_id", "msg"]);

const hostileText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.constantFrom(
    "&".repeat(600),
    "<!channel> <https://evil.example|click> @here",
    "`".repeat(300),
    "*_~>".repeat(400),
    "\uD800",
    "\uDC00x\uD800",
    "x\r\nBcc: victim@example.com",
    "\u2028\u0000\u001b[31m",
    "é".repeat(3000),
    "😀".repeat(1200),
    "%F0%9F%98%80%00%0d%0a",
    "/login?user[password]=s3cr3t&accessToken=s3cr3t#id_token=s3cr3t",
  ),
  fc
    .tuple(fc.string({ unit: "binary", maxLength: 8 }), fc.nat(20_000))
    .map(([s, n]) => s.repeat(Math.ceil(n / Math.max(1, s.length)))),
);

const mutation = fc.record({
  seed: fc.nat(),
  /** Which string leaf becomes hostile (`leaf`), or every request field (`request`). */
  op: fc.constantFrom("leaf", "request"),
  pick: fc.nat(),
  text: hostileText,
  /** How the alert is notified. */
  shape: fc.constantFrom("alert", "alert+previous", "summary", "campaign"),
});

/** The seed with one string leaf, or every request-written string, replaced by `text`. */
function mutate(m: { seed: number; op: string; pick: number; text: string }): string {
  const base = JSON.stringify(seeds[m.seed % seeds.length]);
  let leaf = 0;
  const out = JSON.parse(base, (key, value) => {
    if (typeof value !== "string") return value;
    if (m.op === "request") return REQUEST_KEYS.has(key) ? m.text : value;
    return leaf++ === m.pick % 40 ? m.text : value;
  });
  return JSON.stringify(out);
}

function campaignOf(a: Alert): CampaignAlert {
  return boundAlert({
    ...a,
    kind: "campaign",
    uri: "",
    method: "",
    tx_id: `campaign:${canonicalClient(a.client_ip) ?? a.client_ip}:1700000100`,
    window_start: 1_700_000_100,
    window_seconds: 300,
    events: 20,
    blocked: 18,
    top_rules: [
      { rule_id: a.rule_id, events: 12 },
      { rule_id: a.categories[0] ?? "none", events: 3 },
    ],
  } as CampaignAlert);
}

function notificationOf(a: Alert, shape: string): Notification {
  const summary: ThrottleSummary = {
    clientIp: canonicalClient(a.client_ip) ?? a.client_ip,
    category: primaryCategory(a),
    suppressed: 37,
    windowStart: 1_700_000_000_000,
    windowSeconds: 300,
    firstTxId: a.tx_id,
  };
  if (shape === "summary") return summaryNotification(summary);
  if (shape === "campaign") return alertNotification(campaignOf(a));
  return alertNotification(a, shape === "alert+previous" ? summary : undefined);
}

interface Sent {
  body: string;
  headers: Record<string, string>;
}

function recordingFetch(sent: Sent[]) {
  return async (_url: string, init: RequestInit) => {
    sent.push({ body: String(init.body), headers: init.headers as Record<string, string> });
    return new Response("ok", { status: 200 });
  };
}

const signal = () => new AbortController().signal;
const ONE_LINE = /^[^\r\n]*$/;
const bytes = (s: string) => Buffer.byteLength(s);

/** A body as it goes on the wire: well-formed (so its UTF-8 is exact), JSON that parses. */
function wireJson(body: string): Record<string, unknown> {
  expect(isWellFormed(body)).toBe(true);
  return JSON.parse(body) as Record<string, unknown>;
}

function checkSlack(body: string) {
  const msg = wireJson(body) as { text: string; blocks: Array<Record<string, unknown>> };
  expect(msg.text.length).toBeLessThanOrEqual(SLACK_LIMITS.text);
  expect(msg.blocks.length).toBeLessThanOrEqual(SLACK_LIMITS.blocks);
  for (const b of msg.blocks) {
    if (b.type === "header") {
      const t = (b.text as { text: string }).text;
      expect(t.length).toBeLessThanOrEqual(SLACK_LIMITS.header);
      expect(t).toMatch(ONE_LINE);
    }
    if (b.type === "section") {
      const fields = (b.fields as Array<{ text: string }> | undefined) ?? [];
      expect(fields.length).toBeLessThanOrEqual(SLACK_LIMITS.fields);
      for (const f of fields) expect(f.text.length).toBeLessThanOrEqual(SLACK_LIMITS.field);
      const text = (b.text as { text: string } | undefined)?.text ?? "";
      expect(text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
    }
    if (b.type === "context") {
      const elements = b.elements as Array<{ text: string }>;
      expect(elements.length).toBeLessThanOrEqual(SLACK_LIMITS.contextElements);
      for (const e of elements) expect(e.text.length).toBeLessThanOrEqual(SLACK_LIMITS.sectionText);
    }
  }
  // mrkdwn: every `<` and `>` escaped, every `&` the start of a whole escape.
  const mrkdwn = JSON.stringify({
    text: msg.text,
    blocks: msg.blocks.filter((b) => b.type !== "header"),
  });
  expect(mrkdwn).not.toMatch(/[<>]/);
  expect(mrkdwn.replace(/&(amp|lt|gt);/g, "")).not.toContain("&");
}

function checkPagerDuty(body: string) {
  const ev = wireJson(body) as {
    dedup_key: string;
    payload: Record<string, unknown> & { summary: string; custom_details: unknown };
  };
  expect(ev.dedup_key.length).toBeLessThanOrEqual(PAGERDUTY_LIMITS.dedupKey);
  expect(ev.dedup_key).toMatch(ONE_LINE);
  expect(ev.payload.summary.length).toBeLessThanOrEqual(PAGERDUTY_LIMITS.summary);
  expect(ev.payload.summary).toMatch(ONE_LINE);
  for (const k of ["source", "component", "group", "class"]) {
    const v = ev.payload[k] as string;
    expect(v.length).toBeLessThanOrEqual(PAGERDUTY_LIMITS.field);
    expect(v).toMatch(ONE_LINE);
  }
  expect(bytes(JSON.stringify(ev.payload.custom_details))).toBeLessThanOrEqual(
    PAGERDUTY_LIMITS.customDetailsBytes,
  );
}

function checkWebhook(sent: Sent) {
  wireJson(sent.body);
  expect(bytes(sent.body)).toBeLessThanOrEqual(MAX_ALERT_BYTES + 2048);
  for (const v of Object.values(sent.headers)) expect(v).toMatch(/^[\x20-\x7e]+$/);
  expect(sent.headers["x-waf-delivery"]).toMatch(/^[0-9a-f]{64}$/);
}

function checkEmail(command: SendEmailCommand) {
  const simple = command.input.Content?.Simple;
  const subject = simple?.Subject?.Data ?? "";
  const text = simple?.Body?.Text?.Data ?? "";
  expect(subject).toMatch(ONE_LINE);
  expect(subject.length).toBeLessThanOrEqual(EMAIL_LIMITS.subject);
  expect(isWellFormed(subject)).toBe(true);
  expect(isWellFormed(text)).toBe(true);
  expect(bytes(text)).toBeLessThanOrEqual(EMAIL_LIMITS.bodyBytes);
}

describe("fuzzed real records, on the way out", () => {
  it("give Slack, PagerDuty, webhook and email requests that are valid and within limits", async () => {
    const sent: Sent[] = [];
    const commands: SendEmailCommand[] = [];
    const fetch = recordingFetch(sent);
    const slack = new SlackChannel({
      webhookUrl: "https://hooks.slack.com/services/T/B/x",
      minSeverity: 0,
      fetch,
    });
    const pagerduty = new PagerDutyChannel({
      eventsUrl: "https://events.pagerduty.com/v2/enqueue",
      routingKey: "RK",
      minSeverity: 0,
      fetch,
    });
    const webhook = new WebhookChannel({
      url: "https://hooks.example/",
      secret: "s",
      minSeverity: 0,
      fetch,
    });
    const email = new EmailChannel({
      client: {
        async send(command) {
          commands.push(command);
          return { MessageId: "m" };
        },
      },
      from: "waf@example.com",
      to: ["soc@example.com"],
      minSeverity: 0,
    });
    let alerts = 0;
    await fc.assert(
      fc.asyncProperty(mutation, async (m) => {
        const r = scoreRecord(mutate(m), settings);
        if (!r.ok) return;
        alerts++;
        // Every scored event, critical or not: the alert is what the request shaped.
        const alert = toAlert(r.event, r.score, "1700000000000-0", settings.privacy);
        const json = JSON.stringify(alert);
        expect(isWellFormed(json)).toBe(true);
        expect(bytes(json)).toBeLessThanOrEqual(MAX_ALERT_BYTES);
        // Credentials in a URI never reach an alert (the other fields are not URIs).
        expect(alert.uri).not.toContain("s3cr3t");
        const n = notificationOf(alert, m.shape);
        sent.length = 0;
        commands.length = 0;
        for (const ch of [slack, pagerduty, webhook, email]) {
          expect(await ch.send(n, signal())).toEqual({ ok: true, status: 200 });
        }
        const [s, p, w] = sent as [Sent, Sent, Sent];
        checkSlack(s.body);
        checkPagerDuty(p.body);
        checkWebhook(w);
        checkEmail(commands[0] as SendEmailCommand);
      }),
      { numRuns: RUNS },
    );
    // The property is about alerts: a good share of mutations must still score.
    expect(seeds.length).toBeGreaterThan(10);
    expect(alerts).toBeGreaterThan(RUNS / 3);
  }, 60_000);
});
