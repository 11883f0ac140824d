/**
 * The alert function's use case (reference §4): a batch of alerts in (queued by the scorer);
 * each alert listed once per tx_id, newest first, bounded and retained. Then, side by side and
 * never holding back the list (already pushed): every notification channel and repeat-offender
 * counting (core/reputation/offenders.ts: event alerts only).
 *
 * Notifications are at-least-once (issue 12 row 12): channels hear the newly listed alerts and
 * the ones listed before; each channel's progress (core/alert/throttle.ts) lets through only
 * what it did not finish, so the retry of an invocation that crashed after listing notifies the
 * channels that did not finish, and a redelivered alert never notifies a channel twice. Channels
 * are called on every invocation, with no alerts too, so throttle summaries that came due go
 * out (an empty batch is a valid tick).
 */
import type { Alert } from "../alert/alert.ts";
import type { AlertStore, CountSink, Notifier, OffenderTracker } from "../alert/ports.ts";
import type { Logger } from "../lib/logger.ts";

export interface HandleAlertsDeps {
  list: AlertStore;
  notifiers: readonly Notifier[];
  offenders?: OffenderTracker;
  logger: Logger;
  metrics?: CountSink;
}

export interface AlertResult {
  received: number;
  listed: number;
  duplicates: number;
}

/**
 * Lists and notifies. Rejects only when the list could not be pushed (the invocation is then
 * retried, which is safe: the list deduplicates); nothing after that fails the call.
 * `invocationId` is the invocation's request ID (the same across its retries).
 */
export async function handleAlerts(
  alerts: readonly Alert[],
  deps: HandleAlertsDeps,
  invocationId?: string,
): Promise<AlertResult> {
  const { logger } = deps;
  const { listed, redelivered } = await deps.list.push(alerts);
  for (const a of listed) {
    logger.info("alert listed", {
      tx_id: a.tx_id,
      client_ip: a.client_ip,
      severity: a.severity,
      rule_id: a.rule_id,
    });
  }
  deps.metrics?.count("AlertsReceived", alerts.length);
  deps.metrics?.count("AlertsListed", listed.length);
  // The list is pushed; nothing below may fail the invocation (a retry would find every
  // alert listed already and do nothing), so each side effect logs its own failure.
  const offenders = deps.offenders && listed.length > 0 ? deps.offenders.record(listed) : undefined;
  const results = await Promise.allSettled([
    ...deps.notifiers.map((n) => n.notify(listed, { redelivered, owner: invocationId })),
    ...(offenders ? [offenders] : []),
  ]);
  results.forEach((r, i) => {
    const notifier = deps.notifiers[i];
    if (r.status === "rejected") {
      logger.error(notifier ? "notification channel failed" : "repeat-offender tracking failed", {
        ...(notifier ? { channel: notifier.name } : {}),
        error: (r.reason as Error)?.message ?? String(r.reason),
      });
    } else if (!notifier) {
      for (const entry of r.value as string[]) {
        logger.warn("repeat offender: now treated as malicious", { client_ip: entry });
      }
    }
  });
  return {
    received: alerts.length,
    listed: listed.length,
    duplicates: alerts.length - listed.length,
  };
}
