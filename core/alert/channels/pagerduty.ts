/**
 * PagerDuty Events API v2 (`POST /v2/enqueue`): one `trigger` event per alert.
 *
 * `dedup_key` is derived from the tx_id, so a redelivered alert, or a retry after a timeout,
 * lands on the same PagerDuty alert instead of paging twice: this channel is idempotent and
 * retries ambiguous failures. A throttle summary is sent with the dedup_key of its window's
 * first alert, so it is appended to that (open) PagerDuty alert rather than paging again.
 */
import { createHash } from "node:crypto";
import type { Alert } from "../alert.ts";
import { type AttemptResult, type FetchFn, httpPost } from "../delivery.ts";
import {
  headline,
  isoTime,
  type Notification,
  oneLine,
  primaryCategory,
  type ThrottleSummary,
  truncate,
} from "../notification.ts";
import type { Channel } from "./channel.ts";

export type PagerDutySeverity = "critical" | "error" | "warning" | "info";

/** Our level → PagerDuty's: critical → critical, high → error, medium → warning, low → info. */
export function pagerDutySeverity(level: Alert["severity_level"]): PagerDutySeverity {
  switch (level) {
    case "critical":
      return "critical";
    case "high":
      return "error";
    case "medium":
      return "warning";
    default:
      return "info";
  }
}

/**
 * The dedup_key of a transaction: `waf-<tx_id>`, or `waf-sha256-<hex>` when that would pass
 * PagerDuty's 255-character limit.
 */
export function pagerDutyDedupKey(txId: string): string {
  const plain = `waf-${txId}`;
  return plain.length <= 255
    ? plain
    : `waf-sha256-${createHash("sha256").update(txId).digest("hex")}`;
}

function summaryDetails(s: ThrottleSummary) {
  return {
    client_ip: s.clientIp,
    category: s.category,
    suppressed: s.suppressed,
    window_start: isoTime(s.windowStart, "ms"),
    window_seconds: s.windowSeconds,
    first_tx_id: s.firstTxId,
  };
}

/** The Events API v2 body for a notification. */
export function pagerDutyEvent(n: Notification, routingKey: string, source: string) {
  if (n.kind === "summary") {
    const s = n.summary;
    return {
      routing_key: routingKey,
      event_action: "trigger" as const,
      dedup_key: pagerDutyDedupKey(s.firstTxId),
      payload: {
        summary: truncate(headline(n), 1024),
        source,
        severity: "critical" as PagerDutySeverity,
        timestamp: isoTime(s.windowStart, "ms"),
        component: "waf",
        group: s.clientIp,
        class: s.category,
        custom_details: { throttled: summaryDetails(s) },
      },
    };
  }
  const a = n.alert;
  const details: Record<string, unknown> = {
    severity: a.severity,
    severity_level: a.severity_level,
    anomaly_score: a.anomaly_score,
    client_ip: a.client_ip,
    rule_id: a.rule_id,
    categories: a.categories,
    method: a.method,
    uri: a.uri,
    tx_id: a.tx_id,
  };
  if (n.previous) details.previous_window = summaryDetails(n.previous);
  return {
    routing_key: routingKey,
    event_action: "trigger" as const,
    dedup_key: pagerDutyDedupKey(a.tx_id),
    payload: {
      summary: truncate(
        `${headline(n)}: rule ${oneLine(a.rule_id)}, ${oneLine(a.method)} ${oneLine(a.uri)}`,
        1024,
      ),
      source,
      severity: pagerDutySeverity(a.severity_level),
      timestamp: isoTime(a.timestamp),
      component: truncate(oneLine(a.uri.split("?")[0] ?? ""), 255) || "/",
      group: a.client_ip,
      class: primaryCategory(a),
      custom_details: details,
    },
  };
}

export class PagerDutyChannel implements Channel {
  readonly name = "pagerduty";
  readonly idempotent = true;
  readonly secrets: readonly string[];
  private readonly fetchFn: FetchFn;

  constructor(
    private readonly opts: {
      eventsUrl: string;
      routingKey: string;
      minSeverity: number;
      /** `payload.source`: the system the events come from. */
      source?: string;
      fetch?: FetchFn;
    },
  ) {
    this.secrets = [opts.routingKey];
    this.fetchFn = opts.fetch ?? fetch;
  }

  get minSeverity(): number {
    return this.opts.minSeverity;
  }

  send(n: Notification, signal: AbortSignal): Promise<AttemptResult> {
    const body = pagerDutyEvent(n, this.opts.routingKey, this.opts.source ?? "waf-event-processor");
    return httpPost(
      this.fetchFn,
      this.opts.eventsUrl,
      JSON.stringify(body),
      { "content-type": "application/json" },
      signal,
    );
  }
}
