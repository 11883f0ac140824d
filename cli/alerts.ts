/**
 * `waf alerts [--follow] [--level L] [--ip IP] [--rule ID] [--limit N] [--json]`: the alert
 * list (reference §4, `ALERT_LIST_KEY`, newest first) as a readable table or JSON lines.
 * `--follow` prints the newest ones oldest first, then each new alert as it is listed, like
 * `tail -f`.
 */

import {
  alertListPages,
  alertListSummary,
  type ListedAlertRow,
  parseListedAlert,
} from "../core/alert/alert-list.ts";
import type { RedisClient } from "../core/lib/redis.ts";
import { clean, table, truncate, utc } from "./format.ts";

/** A listed alert as read back. */
export type AlertRow = ListedAlertRow;

export interface AlertFilter {
  /** Levels to keep (lower-case); empty = all. */
  levels: string[];
  ip?: string;
  rule?: string;
}

export const parseAlert = parseListedAlert;

export function matches(a: AlertRow, f: AlertFilter): boolean {
  if (f.levels.length > 0 && !f.levels.includes(String(a.severity_level ?? "").toLowerCase()))
    return false;
  if (f.ip !== undefined && a.client_ip !== f.ip) return false;
  if (f.rule !== undefined && String(a.rule_id) !== f.rule) return false;
  return true;
}

/**
 * The newest `limit` alerts matching the filter, newest first, reading the list a page at a
 * time (it may hold ALERT_LIST_MAX entries). `total` is the list's length.
 */
export async function newestAlerts(
  redis: RedisClient,
  listKey: string,
  filter: AlertFilter,
  limit: number,
): Promise<{ alerts: AlertRow[]; total: number; unreadable: number }> {
  const { length: total } = await alertListSummary(redis, listKey);
  const alerts: AlertRow[] = [];
  let unreadable = 0;
  scan: for await (const raw of alertListPages(redis, listKey, total)) {
    for (const r of raw) {
      const a = parseAlert(r);
      if (!a) unreadable++;
      else if (matches(a, filter)) alerts.push(a);
      if (alerts.length >= limit) break scan;
    }
  }
  return { alerts, total, unreadable };
}

const str = (v: unknown): string => (v === undefined || v === null ? "-" : clean(String(v)));

/** The alerts as a table, in the order given. */
export function alertTable(alerts: AlertRow[], uriWidth = 60): string {
  return table(
    ["TIME (UTC)", "LEVEL", "SEV", "CLIENT IP", "RULE", "CATEGORY", "METHOD", "TX", "URI"],
    alerts.map((a) => [
      utc(Number(a.timestamp)),
      str(a.severity_level),
      str(a.severity),
      truncate(str(a.client_ip), 39),
      truncate(str(a.rule_id), 12),
      truncate(Array.isArray(a.categories) ? clean(a.categories.join(",")) : "-", 16),
      truncate(str(a.method), 7),
      truncate(str(a.tx_id), 24),
      truncate(str(a.uri), uriWidth),
    ]),
  );
}

/** One alert as one JSON line (the stored object, re-serialised: control characters escaped). */
export function alertJson(a: AlertRow): string {
  return JSON.stringify(a);
}

/**
 * Yields the alerts listed since the last call, oldest first. New alerts are at the head of the
 * list; an alert is new when it was listed at or after the newest one seen and its tx_id was
 * not seen (tx_ids are unique in the list: the alert store dedups them).
 */
export class AlertFollower {
  private newestListedAt = Number.NEGATIVE_INFINITY;
  private seen = new Map<string, number>();

  constructor(
    private readonly redis: RedisClient,
    private readonly listKey: string,
    private readonly maxScan = 10_000,
  ) {}

  /** Marks these alerts as already shown. */
  markSeen(alerts: AlertRow[]): void {
    for (const a of alerts) this.remember(a);
  }

  private remember(a: AlertRow): void {
    const at = Number(a.listed_at ?? 0);
    this.seen.set(String(a.tx_id), at);
    if (at > this.newestListedAt) this.newestListedAt = at;
  }

  async poll(): Promise<AlertRow[]> {
    const fresh: AlertRow[] = [];
    // A second of slack: two alerts listed in one second may arrive on either side of a poll.
    const floor = this.newestListedAt - 1;
    scan: for await (const raw of alertListPages(this.redis, this.listKey, this.maxScan)) {
      for (const r of raw) {
        const a = parseAlert(r);
        if (!a) continue;
        const at = Number(a.listed_at ?? 0);
        if (at < floor) break scan;
        if (!this.seen.has(String(a.tx_id))) fresh.push(a);
      }
    }
    fresh.reverse();
    for (const a of fresh) this.remember(a);
    // Forget what can no longer come back through the slack window.
    for (const [tx, at] of this.seen) if (at < this.newestListedAt - 5) this.seen.delete(tx);
    return fresh;
  }
}
