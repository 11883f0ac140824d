/**
 * PagerDuty Events API v2 (`POST /v2/enqueue`): one `trigger` event per alert.
 *
 * `dedup_key` is derived from the tx_id, so a redelivered alert, or a retry after a timeout,
 * lands on the same PagerDuty alert instead of paging twice: this channel is idempotent and
 * retries ambiguous failures. A throttle summary is sent with the dedup_key of its window's
 * first alert, so it is appended to that (open) PagerDuty alert rather than paging again.
 *
 * Every field that can come from the request is one line and within the Events API's limits
 * ({@link PAGERDUTY_LIMITS}): PagerDuty refuses an event with a field too long.
 */
import { createHash } from "node:crypto";
import type { Alert } from "../alert.ts";
import { type CampaignAlert, isCampaignAlert } from "../campaign.ts";
import { type AttemptResult, type FetchFn, httpPost } from "../delivery.ts";
import {
  CAMPAIGN_CATEGORY,
  headline,
  isoTime,
  type Notification,
  primaryCategory,
  type ThrottleSummary,
} from "../notification.ts";
import { oneLine, truncate } from "../text.ts";
import type { Channel } from "./channel.ts";

/** Events API v2 limits (characters), and our bound on `custom_details` (UTF-8 bytes of JSON). */
export const PAGERDUTY_LIMITS = {
  summary: 1024,
  dedupKey: 255,
  /** `source`, `component`, `group`, `class`. */
  field: 255,
  /** PagerDuty takes events up to 512 KB; one alert's details stay far below. */
  customDetailsBytes: 16 * 1024,
} as const;

/** One line of request text for a short PagerDuty field. */
const short = (text: string): string => truncate(oneLine(text), PAGERDUTY_LIMITS.field);

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
 * The dedup_key of a transaction: `waf-<tx_id>`, or `waf-sha256-<hex>` (of the whole tx_id)
 * when that would pass PagerDuty's 255-character limit or is not one plain line.
 */
export function pagerDutyDedupKey(txId: string): string {
  const plain = `waf-${txId}`;
  return plain.length <= PAGERDUTY_LIMITS.dedupKey && oneLine(plain) === plain
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
        summary: truncate(headline(n), PAGERDUTY_LIMITS.summary),
        source: short(source),
        severity: "critical" as PagerDutySeverity,
        timestamp: isoTime(s.windowStart, "ms"),
        component: "waf",
        group: short(s.clientIp),
        class: short(s.category),
        custom_details: { throttled: summaryDetails(s) },
      },
    };
  }
  const a = n.alert;
  const facts = isCampaignAlert(a) ? campaignFacts(a) : eventFacts(a);
  if (n.previous) facts.details.previous_window = summaryDetails(n.previous);
  return {
    routing_key: routingKey,
    event_action: "trigger" as const,
    dedup_key: pagerDutyDedupKey(a.tx_id),
    payload: {
      summary: truncate(oneLine(`${headline(n)}: ${facts.about}`), PAGERDUTY_LIMITS.summary),
      source: short(source),
      severity: facts.severity,
      timestamp: isoTime(a.timestamp),
      component: facts.component,
      group: short(a.client_ip),
      class: facts.class,
      custom_details: facts.details,
    },
  };
}

/** What differs between an event's page and a campaign's. */
interface Facts {
  /** Follows the headline in the summary. */
  about: string;
  severity: PagerDutySeverity;
  component: string;
  class: string;
  details: Record<string, unknown>;
}

function eventFacts(a: Alert): Facts {
  return {
    about: `rule ${a.rule_id}, ${a.method} ${a.uri}`,
    severity: pagerDutySeverity(a.severity_level),
    component: short(a.uri.split("?")[0] ?? "") || "/",
    class: short(primaryCategory(a)),
    details: {
      severity: a.severity,
      severity_level: a.severity_level,
      anomaly_score: a.anomaly_score,
      client_ip: a.client_ip,
      rule_id: a.rule_id,
      categories: a.categories,
      method: a.method,
      uri: a.uri,
      tx_id: a.tx_id,
    },
  };
}

function campaignFacts(a: CampaignAlert): Facts {
  const rules = a.top_rules.map((r) => `${r.rule_id} ×${r.events}`).join(", ");
  return {
    about: `${a.categories.join(", ") || "none"}; top rules ${rules}`,
    // A campaign is critical by definition.
    severity: "critical",
    component: "waf",
    class: CAMPAIGN_CATEGORY,
    details: {
      kind: a.kind,
      events: a.events,
      blocked: a.blocked,
      categories: a.categories,
      top_rules: a.top_rules,
      window_start: isoTime(a.window_start),
      window_seconds: a.window_seconds,
      severity: a.severity,
      anomaly_score: a.anomaly_score,
      client_ip: a.client_ip,
      tx_id: a.tx_id,
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
