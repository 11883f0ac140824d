/**
 * The notification channels a configuration turns on (reference §4, §6): a channel is on when its
 * URL/key is set. Takes constructed clients; builds none.
 */

import type { Config } from "../config.ts";
import type { Logger } from "../lib/logger.ts";
import { isCluster, type RedisClient } from "../lib/redis.ts";
import type { Channel } from "./channels/channel.ts";
import { EmailChannel, type SesSender } from "./channels/email.ts";
import { PagerDutyChannel } from "./channels/pagerduty.ts";
import { SlackChannel } from "./channels/slack.ts";
import { WebhookChannel } from "./channels/webhook.ts";
import type { FetchFn } from "./delivery.ts";
import { alertKeys } from "./keys.ts";
import { ChannelNotifier, type ChannelNotifierOptions } from "./notifier.ts";
import type { CountSink } from "./ports.ts";
import { NotificationThrottle } from "./throttle.ts";

/** How much longer than `NOTIFY_DEADLINE_MS` a channel's claim on an alert lasts. */
export const LEASE_MARGIN_MS = 5000;

type NotifyConfig = Pick<
  Config,
  | "ALERT_LIST_KEY"
  | "ALERT_THROTTLE_S"
  | "ALERT_CHANNEL_RATE_PER_MIN"
  | "SEVERITY_THRESHOLDS"
  | "SLACK_WEBHOOK_URL"
  | "SLACK_MIN_SEVERITY"
  | "PAGERDUTY_ROUTING_KEY"
  | "PAGERDUTY_EVENTS_URL"
  | "PAGERDUTY_MIN_SEVERITY"
  | "ALERT_WEBHOOK_URL"
  | "ALERT_WEBHOOK_SECRET"
  | "WEBHOOK_MIN_SEVERITY"
  | "ALERT_EMAIL_FROM"
  | "ALERT_EMAIL_TO"
  | "EMAIL_MIN_SEVERITY"
  | "NOTIFY_TIMEOUT_MS"
  | "NOTIFY_DEADLINE_MS"
>;

/** The channels that are on, in a fixed order. `ses` is called only when email is on. */
export function channelsFromConfig(
  c: NotifyConfig,
  clients: { fetch?: FetchFn; ses?: () => SesSender } = {},
): Channel[] {
  const channels: Channel[] = [];
  if (c.SLACK_WEBHOOK_URL) {
    channels.push(
      new SlackChannel({
        webhookUrl: c.SLACK_WEBHOOK_URL,
        minSeverity: c.SLACK_MIN_SEVERITY,
        fetch: clients.fetch,
      }),
    );
  }
  if (c.PAGERDUTY_ROUTING_KEY) {
    channels.push(
      new PagerDutyChannel({
        eventsUrl: c.PAGERDUTY_EVENTS_URL,
        routingKey: c.PAGERDUTY_ROUTING_KEY,
        minSeverity: c.PAGERDUTY_MIN_SEVERITY,
        fetch: clients.fetch,
      }),
    );
  }
  if (c.ALERT_WEBHOOK_URL) {
    channels.push(
      new WebhookChannel({
        url: c.ALERT_WEBHOOK_URL,
        secret: c.ALERT_WEBHOOK_SECRET,
        minSeverity: c.WEBHOOK_MIN_SEVERITY,
        fetch: clients.fetch,
      }),
    );
  }
  if (c.ALERT_EMAIL_FROM && c.ALERT_EMAIL_TO.length > 0 && clients.ses) {
    channels.push(
      new EmailChannel({
        client: clients.ses(),
        from: c.ALERT_EMAIL_FROM,
        to: c.ALERT_EMAIL_TO,
        minSeverity: c.EMAIL_MIN_SEVERITY,
      }),
    );
  }
  return channels;
}

/**
 * One notifier per channel that is on: progress (at-least-once), throttle and rate cap in
 * Redis, retries, circuit breaker.
 */
export function notifiersFromConfig(
  c: NotifyConfig,
  deps: {
    redis: RedisClient;
    logger: Logger;
    metrics?: CountSink;
    fetch?: FetchFn;
    ses?: () => SesSender;
    /** Backoff and circuit-breaker tuning (tests); timeouts come from the config. */
    delivery?: Pick<ChannelNotifierOptions, "policy" | "breaker">;
    /** How long a claim outlives `NOTIFY_DEADLINE_MS` (tests shorten it). */
    leaseMarginMs?: number;
    /** The rate cap's window, a minute (tests shorten it). */
    rateWindowMs?: number;
  },
): ChannelNotifier[] {
  const throttle = new NotificationThrottle(deps.redis, {
    keys: alertKeys(c.ALERT_LIST_KEY, undefined, { cluster: isCluster(deps.redis) }),
    windowSeconds: c.ALERT_THROTTLE_S,
    ratePerMinute: c.ALERT_CHANNEL_RATE_PER_MIN,
    leaseMs: c.NOTIFY_DEADLINE_MS + (deps.leaseMarginMs ?? LEASE_MARGIN_MS),
    rateWindowMs: deps.rateWindowMs,
  });
  return channelsFromConfig(c, deps).map(
    (channel) =>
      new ChannelNotifier({
        channel,
        throttle,
        logger: deps.logger,
        metrics: deps.metrics,
        policy: { ...deps.delivery?.policy, attemptTimeoutMs: c.NOTIFY_TIMEOUT_MS },
        breaker: deps.delivery?.breaker,
        deadlineMs: c.NOTIFY_DEADLINE_MS,
        criticalSeverity: c.SEVERITY_THRESHOLDS.critical,
      }),
  );
}
