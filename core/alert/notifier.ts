/**
 * One channel's notifier: minimum severity → progress, throttle and rate cap (throttle.ts) →
 * delivery (retries, backoff, circuit breaker) → progress marked → logs and metrics. It never
 * throws and never takes longer than its deadline (plus two Redis round trips), so a dead
 * receiver cannot hold back the alert list (pushed before) or another channel (each channel
 * runs on its own).
 *
 * At-least-once (issue 12 row 12): alerts listed before (`redelivered`) are offered too; the
 * throttle's progress claim lets through only those this channel did not finish. A
 * notification counts as finished once it was sent, refused for good, could not be built, or
 * (on a channel that does not deduplicate) may have been sent; a throttled or held-back alert
 * is finished when it is counted. Anything else (receiver down, deadline, circuit open) is
 * given back unfinished, so the next invocation that brings the alert notifies it.
 *
 * When the throttle's Redis calls fail (the list push just succeeded, so this is rare), the
 * notifier fails open but bounded: within that invocation only the first newly listed alert
 * per (client, category) goes out. A missed critical alert is worse than a second one.
 */

import { randomUUID } from "node:crypto";
import { mapLimit } from "../lib/limiter.ts";
import type { Logger } from "../lib/logger.ts";
import { type Clock, systemClock } from "../lib/time.ts";
import type { Alert } from "./alert.ts";
import type { Channel } from "./channels/channel.ts";
import {
  CircuitBreaker,
  type CircuitState,
  DEFAULT_POLICY,
  type DeliveryOutcome,
  type DeliveryPolicy,
  deliver,
  redact,
} from "./delivery.ts";
import {
  alertNotification,
  effectiveSeverity,
  type Notification,
  summaryNotification,
  throttleKeyOf,
} from "./notification.ts";
import type { CountSink, NotifyOptions } from "./ports.ts";
import type { Throttle } from "./throttle.ts";

export interface ChannelNotifierOptions {
  channel: Channel;
  /** Absent: every alert at or above the minimum severity is sent. */
  throttle?: Throttle;
  logger: Logger;
  metrics?: CountSink;
  /** Per-attempt timeout, attempts, backoff; `retryAmbiguous` comes from the channel. */
  policy?: Partial<Omit<DeliveryPolicy, "retryAmbiguous">>;
  /** Everything one `notify` call sends on this channel ends within this many ms. */
  deadlineMs?: number;
  /** Deliveries in flight at once on this channel. */
  concurrency?: number;
  breaker?: { failureThreshold?: number; cooldownMs?: number };
  /**
   * The critical threshold (`SEVERITY_THRESHOLDS`' first value): a campaign alert counts as at
   * least this severe for the channel's minimum. Default 80.
   */
  criticalSeverity?: number;
  clock?: Clock;
}

/** Metric names: one per channel (a `channel` dimension would change the metric identity). */
export const metricName = (what: "Sent" | "Failed" | "Throttled" | "Skipped", channel: string) =>
  `Notifications${what}_${channel}`;

export class ChannelNotifier {
  readonly name: string;
  readonly breaker: CircuitBreaker;
  private readonly policy: DeliveryPolicy;
  private readonly deadlineMs: number;
  private readonly concurrency: number;
  private readonly clock: Clock;

  constructor(private readonly opts: ChannelNotifierOptions) {
    const { channel, logger } = opts;
    this.name = channel.name;
    this.clock = opts.clock ?? systemClock;
    this.policy = { ...DEFAULT_POLICY, ...opts.policy, retryAmbiguous: channel.idempotent };
    this.deadlineMs = opts.deadlineMs ?? 10_000;
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
    this.breaker = new CircuitBreaker({
      failureThreshold: opts.breaker?.failureThreshold ?? 5,
      cooldownMs: opts.breaker?.cooldownMs ?? 30_000,
      now: () => this.clock.now(),
      onChange: (state: CircuitState, failures: number) => {
        const fields = { channel: channel.name, circuit: state, consecutive_failures: failures };
        if (state === "open") logger.error("notification channel circuit opened", fields);
        else logger.info(`notification channel circuit ${state}`, fields);
      },
    });
  }

  /**
   * Notifies the channel of newly listed alerts, of alerts listed before that it did not
   * finish, and of throttle windows that ended. Called on every invocation, with no alerts
   * too (then it only sends due summaries).
   */
  async notify(listed: readonly Alert[], opts: NotifyOptions = {}): Promise<void> {
    const started = this.clock.now();
    const { channel, logger } = this.opts;
    const critical = this.opts.criticalSeverity ?? 80;
    const eligible = (a: Alert) => effectiveSeverity(a, critical) >= channel.minSeverity;
    const owner = opts.owner ?? randomUUID();
    const { notifications, throttled, handled } = await this.plan(
      listed.filter(eligible),
      (opts.redelivered ?? []).filter(eligible),
      owner,
    );
    if (throttled > 0 || handled > 0) {
      logger.debug("notifications throttled or handled", {
        channel: channel.name,
        throttled,
        handled,
      });
    }
    const deadlineAt = started + this.deadlineMs;
    const outcomes = await mapLimit(notifications, this.concurrency, (n) =>
      deliver((signal) => channel.send(n, signal), {
        policy: this.policy,
        breaker: this.breaker,
        deadlineAt,
        clock: this.clock,
      }),
    );
    let sent = 0;
    let failed = 0;
    let skipped = 0;
    const done: string[] = [];
    const undone: string[] = [];
    outcomes.forEach((o, i) => {
      const n = notifications[i] as Notification;
      if (n.kind === "alert") (this.finished(o) ? done : undone).push(n.alert.tx_id);
      const fields = { channel: channel.name, ...describe(n), attempts: o.attempts };
      if (o.ok) {
        sent++;
        logger.info("notification sent", { ...fields, status: o.status });
        return;
      }
      if (o.reason === "circuit-open" && o.attempts === 0) skipped++;
      else failed++;
      logger.error("notification failed", {
        ...fields,
        reason: o.reason,
        ...(o.status !== undefined ? { status: o.status } : {}),
        ...(o.detail ? { error: redact(o.detail, channel.secrets) } : {}),
      });
    });
    if (this.opts.throttle && (done.length > 0 || undone.length > 0)) {
      try {
        await this.opts.throttle.settle(channel.name, owner, { done, undone });
      } catch (err) {
        // The claims expire: a retry may notify these again (at least once, not at most).
        logger.error("notification progress unavailable", {
          channel: channel.name,
          error: errorText(err),
        });
      }
    }
    const m = this.opts.metrics;
    if (m) {
      m.count(metricName("Sent", channel.name), sent);
      m.count(metricName("Failed", channel.name), failed);
      m.count(metricName("Skipped", channel.name), skipped);
      m.count(metricName("Throttled", channel.name), throttled);
    }
  }

  /** Whether a delivery is over for good: nothing a later attempt could do better. */
  private finished(o: DeliveryOutcome): boolean {
    if (o.ok || o.reason === "rejected" || o.reason === "invalid") return true;
    return o.reason === "ambiguous" && !this.opts.channel.idempotent;
  }

  private async plan(
    listed: readonly Alert[],
    redelivered: readonly Alert[],
    owner: string,
  ): Promise<{ notifications: Notification[]; throttled: number; handled: number }> {
    const { throttle, channel, logger } = this.opts;
    if (!throttle) {
      return { notifications: listed.map((a) => alertNotification(a)), throttled: 0, handled: 0 };
    }
    const notifications: Notification[] = [];
    let throttled = 0;
    let handled = 0;
    try {
      for (const d of await throttle.admit(channel.name, [...listed, ...redelivered], owner)) {
        if (d.send) notifications.push(alertNotification(d.alert, d.previous));
        else if (d.reason === "handled") handled++;
        else throttled++;
      }
    } catch (err) {
      logger.error(
        "notification throttle unavailable: sending the first alert per client IP and category",
        {
          channel: channel.name,
          error: errorText(err),
        },
      );
      const seen = new Set<string>();
      for (const a of listed) {
        const k = throttleKeyOf(a);
        const key = `${k.category}\u0000${k.clientIp}`;
        if (seen.has(key)) throttled++;
        else {
          seen.add(key);
          notifications.push(alertNotification(a));
        }
      }
    }
    try {
      for (const s of await throttle.due(channel.name)) notifications.push(summaryNotification(s));
    } catch (err) {
      logger.error("notification throttle summaries unavailable", {
        channel: channel.name,
        error: errorText(err),
      });
    }
    return { notifications, throttled, handled };
  }
}

function describe(n: Notification): Record<string, unknown> {
  if (n.kind === "summary") {
    return {
      kind: "summary",
      client_ip: n.summary.clientIp,
      category: n.summary.category,
      suppressed: n.summary.suppressed,
      first_tx_id: n.summary.firstTxId,
    };
  }
  return {
    kind: "alert",
    tx_id: n.alert.tx_id,
    client_ip: n.alert.client_ip,
    severity: n.alert.severity,
    rule_id: n.alert.rule_id,
    ...(n.previous ? { previous_suppressed: n.previous.suppressed } : {}),
  };
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export type { DeliveryOutcome };
