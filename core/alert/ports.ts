/**
 * What the alert use case (core/use-cases/handle-alerts.ts) needs from the outside, declared
 * here and implemented by adapters: the notifiers in core/alert/notifier.ts, the repeat
 * offenders in core/reputation/offenders.ts, the Redis alert list in alert-list.ts.
 */
import type { Alert } from "./alert.ts";

/** What an invocation tells every channel besides the alerts it newly listed. */
export interface NotifyOptions {
  /**
   * Alerts listed before (a redelivery, or the retry of an invocation that crashed after
   * listing them): a channel notifies them only where its progress says it has not finished.
   * A notifier that keeps no progress ignores them.
   */
  redelivered?: readonly Alert[];
  /**
   * Who notifies: the invocation's request ID, the same across the retries of one invocation,
   * so a retry takes over what its crashed attempt had claimed.
   */
  owner?: string;
}

/**
 * A notification channel (Slack, PagerDuty, webhook, email). Should not throw; if one does,
 * the use case logs it and carries on.
 */
export interface Notifier {
  readonly name: string;
  notify(listed: readonly Alert[], opts?: NotifyOptions): Promise<void>;
}

/** Counts critical alerts per client and marks repeat offenders; returns the new offenders. */
export interface OffenderTracker {
  record(alerts: readonly Alert[]): Promise<string[]>;
}

/** What pushing a batch to the alert list did. */
export interface PushResult {
  /** Newly listed, in order. */
  listed: Alert[];
  /** Listed before, once per tx_id (none of them in `listed`). */
  redelivered: Alert[];
}

/** The alert list: lists each tx_id once. */
export interface AlertStore {
  push(alerts: readonly Alert[]): Promise<PushResult>;
}

/** Counters (EMF metrics on AWS). */
export interface CountSink {
  count(name: string, value: number): void;
}
