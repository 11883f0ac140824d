/**
 * Generic JSON webhook: one POST per notification, optionally HMAC-signed.
 *
 * Headers:
 * - `X-WAF-Event`: `alert` or `summary`;
 * - `X-WAF-Delivery`: the SHA-256 (hex) of the whole notification id (the tx_id for an alert),
 *   identical across retries, distinct for distinct ids however long, and always a plain header
 *   value whatever the id holds (issue 12 rows 4 and 10);
 * - `X-WAF-Timestamp`: unix seconds of this attempt;
 * - `X-WAF-Signature: sha256=<hex>` (when a secret is set): HMAC-SHA256 over
 *   `<timestamp>.<raw body>` with the secret. Receivers recompute it, compare in constant
 *   time, and refuse timestamps more than a few minutes old, which stops replays.
 *
 * A timeout is retried: receivers deduplicate on `X-WAF-Delivery` (documented contract), so
 * the channel counts as idempotent.
 */
import { createHash, createHmac } from "node:crypto";
import { type AttemptResult, type FetchFn, httpPost } from "../delivery.ts";
import { type Notification, summaryText } from "../notification.ts";
import type { Channel } from "./channel.ts";

/** The JSON body for a notification. */
export function webhookBody(n: Notification): Record<string, unknown> {
  if (n.kind === "summary") {
    const s = n.summary;
    return {
      type: "summary",
      id: n.id,
      summary: {
        text: summaryText(s),
        client_ip: s.clientIp,
        category: s.category,
        suppressed: s.suppressed,
        window_start: Math.floor(s.windowStart / 1000),
        window_seconds: s.windowSeconds,
        first_tx_id: s.firstTxId,
      },
    };
  }
  const body: Record<string, unknown> = { type: "alert", id: n.id, alert: n.alert };
  if (n.previous) {
    const p = n.previous;
    body.previous_window = {
      text: summaryText(p),
      suppressed: p.suppressed,
      window_start: Math.floor(p.windowStart / 1000),
      window_seconds: p.windowSeconds,
      first_tx_id: p.firstTxId,
    };
  }
  return body;
}

/**
 * The signature header value for a body sent at `timestamp` (unix seconds).
 * @example signWebhook("s3cret", 1700000000, '{"type":"alert"}') // "sha256=…"
 */
export function signWebhook(secret: string, timestamp: number, rawBody: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${rawBody}`).digest("hex")}`;
}

/**
 * The `X-WAF-Delivery` value of a notification id: hex SHA-256 of its UTF-8 bytes (ids are
 * well-formed: core/alert/text.ts).
 * @example webhookDeliveryId("tx-1") // "5d1b…" (64 hex digits)
 */
export function webhookDeliveryId(id: string): string {
  return createHash("sha256").update(id, "utf8").digest("hex");
}

export class WebhookChannel implements Channel {
  readonly name = "webhook";
  readonly idempotent = true;
  readonly secrets: readonly string[];
  private readonly fetchFn: FetchFn;
  private readonly now: () => number;

  constructor(
    private readonly opts: {
      url: string;
      secret?: string;
      minSeverity: number;
      fetch?: FetchFn;
      /** Epoch ms, for the timestamp header. */
      now?: () => number;
    },
  ) {
    const u = new URL(opts.url);
    this.secrets = [opts.url, u.pathname + u.search, ...(opts.secret ? [opts.secret] : [])];
    this.fetchFn = opts.fetch ?? fetch;
    this.now = opts.now ?? Date.now;
  }

  get minSeverity(): number {
    return this.opts.minSeverity;
  }

  send(n: Notification, signal: AbortSignal): Promise<AttemptResult> {
    const body = JSON.stringify(webhookBody(n));
    const timestamp = Math.floor(this.now() / 1000);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "user-agent": "waf-event-processor",
      "x-waf-event": n.kind,
      "x-waf-delivery": webhookDeliveryId(n.id),
      "x-waf-timestamp": String(timestamp),
    };
    if (this.opts.secret)
      headers["x-waf-signature"] = signWebhook(this.opts.secret, timestamp, body);
    return httpPost(this.fetchFn, this.opts.url, body, headers, signal);
  }
}
