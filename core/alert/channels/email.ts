/**
 * Email through Amazon SES v2 (`SendEmailCommand`, simple content, plain text only: nothing
 * attacker-controlled is ever rendered as HTML).
 *
 * SES has no idempotency token, so a call that timed out is not retried (the mail may have
 * gone); throttling and 5xx answers are. The client is built by the caller with
 * `maxAttempts: 1`: retries are ours, under our deadline.
 *
 * The subject is one line of at most {@link EMAIL_LIMITS}`.subject` characters (a CR/LF in it
 * would forge headers); every body line that can come from the request is one line and bounded,
 * so the body stays within {@link EMAIL_LIMITS}`.bodyBytes`.
 */
import { SendEmailCommand } from "@aws-sdk/client-sesv2";
import { isCampaignAlert } from "../campaign.ts";
import type { AttemptResult } from "../delivery.ts";
import {
  headline,
  humanDuration,
  isoTime,
  type Notification,
  summaryText,
} from "../notification.ts";
import { oneLine, truncate } from "../text.ts";
import type { Channel } from "./channel.ts";

export const EMAIL_LIMITS = {
  /** Characters of the subject. */
  subject: 200,
  /** Characters of one body line built from request text. */
  line: 2100,
  /** UTF-8 bytes of the whole body. */
  bodyBytes: 16 * 1024,
} as const;

/** One body line of request text: one line, bounded. */
const line = (text: string): string => truncate(oneLine(text), EMAIL_LIMITS.line);
const subject = (text: string): string => truncate(oneLine(text), EMAIL_LIMITS.subject);

/** The slice of `SESv2Client` this channel uses (a hand-written fake in unit tests). */
export interface SesSender {
  send(
    command: SendEmailCommand,
    options?: { abortSignal?: AbortSignal },
  ): Promise<{ MessageId?: string }>;
}

/** Subject and plain-text body of a notification. */
export function emailContent(n: Notification): { subject: string; text: string } {
  if (n.kind === "summary") {
    const s = n.summary;
    return {
      subject: subject(`[WAF] ${headline(n).replace(/^WAF /, "")}`),
      text: [
        line(`WAF alerts throttled: ${summaryText(s)}.`),
        "",
        line(`Client IP:       ${s.clientIp}`),
        line(`Category:        ${s.category}`),
        `Not notified:    ${s.suppressed}`,
        `Window start:    ${isoTime(s.windowStart, "ms")}`,
        line(`First alert:     ${s.firstTxId}`),
        "",
        "Every alert is in the Redis alert list (waf alerts).",
      ].join("\n"),
    };
  }
  const a = n.alert;
  const lines = isCampaignAlert(a)
    ? [
        line(headline(n)),
        "",
        "A campaign: one client's events in one window, beyond any single request.",
        `Events:          ${a.events} (${a.blocked} blocked by the firewall)`,
        `Window:          ${isoTime(a.window_start)}, ${humanDuration(a.window_seconds)}`,
        line(`Client IP:       ${a.client_ip}`),
        line(`Categories:      ${a.categories.join(", ") || "none"}`),
        line(
          `Top rules:       ${a.top_rules.map((r) => `${r.rule_id} (${r.events})`).join(", ") || "none"}`,
        ),
        `Highest severity: ${a.severity} (anomaly score ${a.anomaly_score})`,
        line(`tx_id:           ${a.tx_id}`),
      ]
    : [
        line(headline(n)),
        "",
        line(`Level:           ${a.severity_level}`),
        `Severity:        ${a.severity} (anomaly score ${a.anomaly_score})`,
        line(`Client IP:       ${a.client_ip}`),
        line(`Rule:            ${a.rule_id} (${a.categories.join(", ") || "none"})`),
        line(`Request:         ${`${a.method} ${a.uri}`.trim()}`),
        line(`tx_id:           ${a.tx_id}`),
        `Time:            ${isoTime(a.timestamp)}`,
      ];
  if (n.previous) lines.push("", line(`Previous window: ${summaryText(n.previous)}.`));
  const level = isCampaignAlert(a) ? "critical campaign" : a.severity_level;
  return {
    subject: subject(`[WAF ${level}] ${headline(n)}`),
    text: lines.join("\n"),
  };
}

function classifySesError(err: unknown): AttemptResult {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  const status = e?.$metadata?.httpStatusCode;
  const name = e?.name ?? "error";
  if (name === "TimeoutError" || name === "AbortError") {
    return { ok: false, kind: "ambiguous", detail: "timeout" };
  }
  if (status === undefined) return { ok: false, kind: "ambiguous", detail: name };
  if (status >= 500 || status === 429 || /Throttl|TooManyRequests/.test(name)) {
    return { ok: false, kind: "failed", status, detail: `${name} (HTTP ${status})` };
  }
  return { ok: false, kind: "rejected", status, detail: `${name} (HTTP ${status})` };
}

export class EmailChannel implements Channel {
  readonly name = "email";
  readonly idempotent = false;
  readonly secrets: readonly string[] = [];

  constructor(
    private readonly opts: {
      client: SesSender;
      from: string;
      to: readonly string[];
      minSeverity: number;
      /** SES configuration set (event publishing, suppression), if any. */
      configurationSet?: string;
    },
  ) {}

  get minSeverity(): number {
    return this.opts.minSeverity;
  }

  /** The SES command for a notification. */
  command(n: Notification): SendEmailCommand {
    const { subject, text } = emailContent(n);
    return new SendEmailCommand({
      FromEmailAddress: this.opts.from,
      Destination: { ToAddresses: [...this.opts.to] },
      Content: {
        Simple: {
          Subject: { Data: subject, Charset: "UTF-8" },
          Body: { Text: { Data: text, Charset: "UTF-8" } },
        },
      },
      ...(this.opts.configurationSet ? { ConfigurationSetName: this.opts.configurationSet } : {}),
    });
  }

  async send(n: Notification, signal: AbortSignal): Promise<AttemptResult> {
    try {
      await this.opts.client.send(this.command(n), { abortSignal: signal });
      return { ok: true, status: 200 };
    } catch (err) {
      if (signal.aborted) return { ok: false, kind: "ambiguous", detail: "timeout" };
      return classifySesError(err);
    }
  }
}
