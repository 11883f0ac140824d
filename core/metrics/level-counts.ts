/**
 * Per-minute counts of scored events by level, kept in Redis by the scorer so the live view can
 * show the distribution of everything scored (not only what alerted) and the live rate, from
 * Redis alone. Best effort and approximate: a redelivered record is counted again.
 *
 * Key `<ALERT_LIST_KEY>:stats:<unix minute>` (core/alert/keys.ts): a hash of `events`,
 * `critical`, `high`, `medium`, `low`; it expires two hours after its minute.
 */
import { type AlertKeys, alertKeys } from "../alert/keys.ts";
import { isCluster, type RedisClient } from "../lib/redis.ts";
import type { SeverityLevel } from "../scoring/score.ts";

export const LEVELS: readonly SeverityLevel[] = ["critical", "high", "medium", "low"];
const RETENTION_S = 2 * 3600;

export type LevelTally = Record<SeverityLevel, number>;

export function emptyTally(): LevelTally {
  return { critical: 0, high: 0, medium: 0, low: 0 };
}

export interface EventRates {
  /** Scored events in the window, and by level. */
  events: number;
  byLevel: LevelTally;
  windowSeconds: number;
  /** Events per second over the last full minute and what has passed of this one. */
  perSecond: number;
}

export class LevelCounts {
  private readonly keys: AlertKeys;

  constructor(
    private readonly redis: RedisClient,
    alertListKey: string,
  ) {
    this.keys = alertKeys(alertListKey, undefined, { cluster: isCluster(redis) });
  }

  private key(minute: number): string {
    return this.keys.stats(minute);
  }

  /** Adds one batch's tally to the minute of `nowMs`. */
  async add(tally: LevelTally, nowMs: number): Promise<void> {
    const events = LEVELS.reduce((n, l) => n + tally[l], 0);
    if (events === 0) return;
    const minute = Math.floor(nowMs / 60_000);
    const key = this.key(minute);
    const p = this.redis.pipeline().hincrby(key, "events", events);
    for (const level of LEVELS) if (tally[level] > 0) p.hincrby(key, level, tally[level]);
    p.expireat(key, (minute + 1) * 60 + RETENTION_S);
    for (const [err] of (await p.exec()) ?? []) if (err) throw err;
  }

  /** The last `windowSeconds` (whole minutes, this one included) and the current rate. */
  async window(nowMs: number, windowSeconds = 3600): Promise<EventRates> {
    const now = Math.floor(nowMs / 60_000);
    const minutes = Math.max(1, Math.ceil(windowSeconds / 60));
    const p = this.redis.pipeline();
    for (let m = now - minutes + 1; m <= now; m++) p.hgetall(this.key(m));
    const rows = ((await p.exec()) ?? []).map(([err, v]) => {
      if (err) throw err;
      return (v ?? {}) as Record<string, string>;
    });
    const byLevel = emptyTally();
    let events = 0;
    for (const row of rows) {
      events += Number(row.events ?? 0);
      for (const level of LEVELS) byLevel[level] += Number(row[level] ?? 0);
    }
    const current = Number(rows.at(-1)?.events ?? 0);
    const previous = Number(rows.at(-2)?.events ?? 0);
    const intoMinute = (nowMs % 60_000) / 1000;
    return {
      events,
      byLevel,
      windowSeconds: minutes * 60,
      perSecond: (current + previous) / (60 + intoMinute),
    };
  }
}
