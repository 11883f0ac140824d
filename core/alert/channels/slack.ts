/**
 * Slack incoming webhook: a readable message (fallback `text` plus Block Kit `blocks`) with
 * level, severity, client IP, rule and categories, request, tx_id and time.
 *
 * Slack does not deduplicate, so a timed-out post is not retried (it may have been posted);
 * 5xx, 429 and refused connections are. Attacker-controlled text (URI, rule id from the
 * record) is escaped, so it cannot mention `@channel` or forge links.
 */
import { type AttemptResult, type FetchFn, httpPost } from "../delivery.ts";
import {
  headline,
  isoTime,
  type Notification,
  oneLine,
  primaryCategory,
  summaryText,
  truncate,
} from "../notification.ts";
import type { Channel } from "./channel.ts";

/** Escapes Slack mrkdwn control characters (`&`, `<`, `>`). */
export function slackEscape(text: string): string {
  return oneLine(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Inline code: escaped, backticks replaced so the span cannot be closed early. */
function code(text: string, max = 500): string {
  return `\`${slackEscape(truncate(text, max)).replace(/`/g, "'")}\``;
}

type Block = Record<string, unknown>;

const field = (title: string, value: string): Block => ({
  type: "mrkdwn",
  text: `*${title}*\n${value}`,
});

const context = (text: string): Block => ({
  type: "context",
  elements: [{ type: "mrkdwn", text }],
});

/** The Slack message for a notification. */
export function slackMessage(n: Notification): { text: string; blocks: Block[] } {
  if (n.kind === "summary") {
    const s = n.summary;
    return {
      text: slackEscape(headline(n)),
      blocks: [
        {
          type: "section",
          text: {
            type: "mrkdwn",
            text: `:mute: *WAF alerts throttled* ${slackEscape(summaryText(s))}`,
          },
        },
        context(
          `window from ${isoTime(s.windowStart, "ms")} · first alert tx_id ${code(s.firstTxId, 200)}`,
        ),
      ],
    };
  }
  const a = n.alert;
  const blocks: Block[] = [
    {
      type: "header",
      text: {
        type: "plain_text",
        text: truncate(`:rotating_light: ${headline(n)}`, 150),
        emoji: true,
      },
    },
    {
      type: "section",
      fields: [
        field("Level", slackEscape(a.severity_level)),
        field("Severity", `${a.severity} (anomaly score ${a.anomaly_score})`),
        field("Client IP", code(a.client_ip, 100)),
        field(
          "Rule",
          `${code(a.rule_id, 100)} · ${slackEscape(a.categories.length > 0 ? a.categories.join(", ") : primaryCategory(a))}`,
        ),
        field("Request", code(`${a.method ? `${a.method} ` : ""}${a.uri}`)),
        field("tx_id", code(a.tx_id, 200)),
      ],
    },
    context(`${isoTime(a.timestamp)} · waf-event-processor`),
  ];
  if (n.previous) {
    blocks.push(context(`:mute: previous window: ${slackEscape(summaryText(n.previous))}`));
  }
  return { text: slackEscape(headline(n)), blocks };
}

export class SlackChannel implements Channel {
  readonly name = "slack";
  readonly idempotent = false;
  readonly secrets: readonly string[];
  private readonly fetchFn: FetchFn;

  constructor(private readonly opts: { webhookUrl: string; minSeverity: number; fetch?: FetchFn }) {
    this.secrets = [opts.webhookUrl, new URL(opts.webhookUrl).pathname];
    this.fetchFn = opts.fetch ?? fetch;
  }

  get minSeverity(): number {
    return this.opts.minSeverity;
  }

  send(n: Notification, signal: AbortSignal): Promise<AttemptResult> {
    return httpPost(
      this.fetchFn,
      this.opts.webhookUrl,
      JSON.stringify(slackMessage(n)),
      { "content-type": "application/json; charset=utf-8" },
      signal,
    );
  }
}
