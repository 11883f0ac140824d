/**
 * Slack incoming webhook: a readable message (fallback `text` plus Block Kit `blocks`) with
 * level, severity, client IP, rule and categories, request, tx_id and time; for a campaign,
 * its events, blocked, categories, top rules and window.
 *
 * Slack does not deduplicate, so a timed-out post is not retried (it may have been posted);
 * 5xx, 429 and refused connections are. Attacker-controlled text (URI, rule id, tx_id) is
 * escaped, so it cannot mention `@channel` or forge links, and bounded after escaping, never
 * inside an escape, so no field passes Block Kit's limits ({@link SLACK_LIMITS}): Slack
 * refuses a whole message for one field too long (issue 12 row 5).
 */
import type { Alert } from "../alert.ts";
import { type CampaignAlert, isCampaignAlert } from "../campaign.ts";
import { type AttemptResult, type FetchFn, httpPost } from "../delivery.ts";
import {
  headline,
  humanDuration,
  isoTime,
  type Notification,
  primaryCategory,
  summaryText,
} from "../notification.ts";
import { ELLIPSIS, oneLine, truncate, wellFormed } from "../text.ts";
import type { Channel } from "./channel.ts";

/** Block Kit's limits (UTF-16 units; Slack counts characters, never more than these). */
export const SLACK_LIMITS = {
  /** Top-level `text`: Slack truncates past 40,000; it is the notification's one line. */
  text: 3000,
  /** A header block's plain_text. */
  header: 150,
  /** A section's `text`, and any other text object. */
  sectionText: 3000,
  /** One of a section's `fields`. */
  field: 2000,
  /** A section's number of `fields`. */
  fields: 10,
  /** A context block's elements. */
  contextElements: 10,
  /** Blocks in one message. */
  blocks: 50,
} as const;

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };

/**
 * Escapes Slack mrkdwn control characters (`&`, `<`, `>`) of one line of well-formed text and
 * bounds the result to `max` characters, measured after escaping and never cut inside an
 * escape or a surrogate pair ("…" marks a cut).
 * @example slackEscape("a<b>&c") // "a&lt;b&gt;&amp;c"
 */
export function slackEscape(text: string, max: number = SLACK_LIMITS.sectionText): string {
  const s = oneLine(wellFormed(text));
  const whole = s.replace(/[&<>]/g, (c) => ESCAPES[c] as string);
  if (whole.length <= max) return whole;
  let out = "";
  for (const ch of s) {
    const e = ESCAPES[ch] ?? ch;
    if (out.length + e.length > max - ELLIPSIS.length) break;
    out += e;
  }
  return `${out}${ELLIPSIS}`;
}

/**
 * Inline code of at most `max` characters, backticks included: escaped, and backticks
 * replaced so the span cannot be closed early.
 */
function code(text: string, max: number): string {
  return `\`${slackEscape(text.replace(/`/g, "'"), max - 2)}\``;
}

type Block = Record<string, unknown>;

/** A section field: a bold title over a value, within the field limit. */
const field = (title: string, value: (room: number) => string): Block => {
  const head = `*${title}*\n`;
  return { type: "mrkdwn", text: head + value(SLACK_LIMITS.field - head.length) };
};

const context = (text: string): Block => ({
  type: "context",
  elements: [{ type: "mrkdwn", text }],
});

const header = (text: string): Block => ({
  type: "header",
  text: { type: "plain_text", text: truncate(text, SLACK_LIMITS.header), emoji: true },
});

/** The top-level `text` (the notification's one line, also what Slack's previews show). */
const fallback = (n: Notification): string => slackEscape(headline(n), SLACK_LIMITS.text);

/** The Slack message for a notification. */
export function slackMessage(n: Notification): { text: string; blocks: Block[] } {
  if (n.kind === "summary") {
    const s = n.summary;
    return {
      text: fallback(n),
      blocks: [
        {
          type: "section",
          text: {
            type: "mrkdwn",
            text: `:mute: *WAF alerts throttled* ${slackEscape(summaryText(s), 2500)}`,
          },
        },
        context(
          `window from ${isoTime(s.windowStart, "ms")} · first alert tx_id ${code(s.firstTxId, 300)}`,
        ),
      ],
    };
  }
  const a = n.alert;
  const blocks: Block[] = [
    header(`:rotating_light: ${headline(n)}`),
    {
      type: "section",
      fields: isCampaignAlert(a) ? campaignFields(a) : eventFields(a),
    },
    context(`${isoTime(a.timestamp)} · waf-event-processor`),
  ];
  if (n.previous) {
    blocks.push(context(`:mute: previous window: ${slackEscape(summaryText(n.previous), 2500)}`));
  }
  return { text: fallback(n), blocks };
}

function eventFields(a: Alert): Block[] {
  return [
    field("Level", (room) => slackEscape(a.severity_level, room)),
    field("Severity", () => `${a.severity} (anomaly score ${a.anomaly_score})`),
    field("Client IP", (room) => code(a.client_ip, Math.min(room, 200))),
    field("Rule", (room) => {
      const rule = code(a.rule_id, 300);
      const cats = a.categories.length > 0 ? a.categories.join(", ") : primaryCategory(a);
      return `${rule} · ${slackEscape(cats, room - rule.length - 3)}`;
    }),
    field("Request", (room) => code(`${a.method ? `${a.method} ` : ""}${a.uri}`, room)),
    field("tx_id", (room) => code(a.tx_id, room)),
  ];
}

function campaignFields(a: CampaignAlert): Block[] {
  const rules = a.top_rules.map((r) => `${r.rule_id} ×${r.events}`).join(", ") || "none";
  return [
    field("Campaign", (room) =>
      slackEscape(
        `${a.events} events, ${a.blocked} blocked, in ${humanDuration(a.window_seconds)}`,
        room,
      ),
    ),
    field("Highest severity", () => `${a.severity} (anomaly score ${a.anomaly_score})`),
    field("Client IP", (room) => code(a.client_ip, Math.min(room, 200))),
    field("Categories", (room) => slackEscape(a.categories.join(", ") || "none", room)),
    field("Top rules", (room) => code(rules, room)),
    field("Window", () => `from ${isoTime(a.window_start)}`),
    field("tx_id", (room) => code(a.tx_id, room)),
  ];
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
