/**
 * Email through Amazon SES v2 (`SendEmailCommand`, simple content, plain text only: nothing
 * attacker-controlled is ever rendered as HTML).
 *
 * SES has no idempotency token, so a call that timed out is not retried (the mail may have
 * gone); throttling and 5xx answers are. The client is built by the caller with
 * `maxAttempts: 1`: retries are ours, under our deadline.
 */
import { SendEmailCommand } from "@aws-sdk/client-sesv2";
import type { AttemptResult } from "../delivery.ts";
import {
  headline,
  isoTime,
  type Notification,
  oneLine,
  summaryText,
  truncate,
} from "../notification.ts";
import type { Channel } from "./channel.ts";

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
      subject: truncate(`[WAF] ${headline(n).replace(/^WAF /, "")}`, 200),
      text: [
        `WAF alerts throttled: ${summaryText(s)}.`,
        "",
        `Client IP:       ${s.clientIp}`,
        `Category:        ${s.category}`,
        `Not notified:    ${s.suppressed}`,
        `Window start:    ${isoTime(s.windowStart, "ms")}`,
        `First alert:     ${oneLine(s.firstTxId)}`,
        "",
        "Every alert is in the Redis alert list (waf alerts).",
      ].join("\n"),
    };
  }
  const a = n.alert;
  const lines = [
    `${headline(n)}`,
    "",
    `Level:           ${a.severity_level}`,
    `Severity:        ${a.severity} (anomaly score ${a.anomaly_score})`,
    `Client IP:       ${oneLine(a.client_ip)}`,
    `Rule:            ${oneLine(a.rule_id)} (${oneLine(a.categories.join(", ") || "none")})`,
    `Request:         ${oneLine(`${a.method} ${truncate(a.uri, 2000)}`.trim())}`,
    `tx_id:           ${oneLine(a.tx_id)}`,
    `Time:            ${isoTime(a.timestamp)}`,
  ];
  if (n.previous) lines.push("", `Previous window: ${summaryText(n.previous)}.`);
  return {
    subject: truncate(`[WAF ${a.severity_level}] ${headline(n)}`, 200),
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
