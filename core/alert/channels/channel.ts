/**
 * The notification channel port: Slack, PagerDuty, the generic webhook and email each turn a
 * {@link Notification} into one request and classify its answer; retries, throttling and the
 * circuit breaker live around them (notifier.ts), not in them.
 */
import type { AttemptResult } from "../delivery.ts";
import type { Notification } from "../notification.ts";

export interface Channel {
  /** Short, stable name: used in logs, metric names and throttle keys. */
  readonly name: string;
  /** Alerts below this severity never reach the channel. */
  readonly minSeverity: number;
  /**
   * Whether the receiver deduplicates a repeated request, so a retry after an ambiguous
   * failure (a timeout) cannot notify twice.
   */
  readonly idempotent: boolean;
  /** Values that must never reach a log (URLs, keys), for redaction of error details. */
  readonly secrets: readonly string[];
  /** One attempt; `signal` aborts it at the attempt's timeout. */
  send(notification: Notification, signal: AbortSignal): Promise<AttemptResult>;
}
