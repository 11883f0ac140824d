/**
 * What the alert use case (core/use-cases/handle-alerts.ts) needs from the outside, declared
 * here and implemented by adapters: the notifiers in core/alert/notifier.ts, the repeat
 * offenders in core/reputation/offenders.ts, the Redis alert list in alert-list.ts.
 */
import type { Alert } from "./alert.ts";

/**
 * A notification channel (Slack, PagerDuty, webhook, email). Should not throw; if one does,
 * the use case logs it and carries on.
 */
export interface Notifier {
  readonly name: string;
  notify(alerts: readonly Alert[]): Promise<void>;
}

/** Counts critical alerts per client and marks repeat offenders; returns the new offenders. */
export interface OffenderTracker {
  record(alerts: readonly Alert[]): Promise<string[]>;
}

/** The alert list: lists each tx_id once; returns the alerts that were newly listed. */
export interface AlertStore {
  push(alerts: readonly Alert[]): Promise<Alert[]>;
}

/** Counters (EMF metrics on AWS). */
export interface CountSink {
  count(name: string, value: number): void;
}
