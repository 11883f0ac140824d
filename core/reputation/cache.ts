/**
 * The scorer's in-memory copy of the dynamic reputation sources (reference §3): the
 * threat-intelligence set feeds write (`REPUTATION_SET_KEY`, see blocklist.ts for its shape)
 * and the repeat offenders the alert function marks (offenders.ts).
 *
 * `has()` is synchronous and makes no network call: scoring an event never waits for Redis.
 * When the copy is older than the refresh interval, `has()` starts a reload in the background
 * and keeps answering from the old copy until the new one is complete, then swaps it in. On
 * Lambda this needs no timer that would outlive an invocation: a frozen container simply
 * refreshes on its first event after thawing. If Redis is unreachable, the last copy stays,
 * minus the entries that expired meanwhile.
 */

import { alertKeys } from "../alert/keys.ts";
import type { Config } from "../config.ts";
import { formatIp, IpSet, type ParsedIp } from "../event/ip.ts";
import { fieldMap } from "../lib/fields.ts";
import type { Logger } from "../lib/logger.ts";
import type { RedisClient } from "../lib/redis.ts";
import { maskIp } from "../privacy/privacy.ts";
import type { MaliciousSource } from "../scoring/reputation.ts";

export interface ReputationCacheOptions {
  /** `REPUTATION_SET_KEY`: the feeds' sorted set (or plain set). */
  feedKey?: string;
  /** The repeat offenders' sorted set, when detection is on. */
  offendersKey?: string;
  /** Reload when the copy is older than this. */
  refreshMs: number;
  /** `IP_HASH_KEY`, to match `h:…` offender entries (IP_MASKING=hash). */
  ipHashKey?: string;
  logger?: Logger;
  /** Epoch ms. */
  now?: () => number;
}

export interface RefreshStats {
  feed: number;
  offenders: number;
  invalid: number;
}

interface Entry {
  entry: string;
  /** Unix seconds; Infinity = never. */
  expiresAt: number;
}

/** Options for a configuration, or undefined when neither source is on (nothing to cache). */
export function reputationCacheOptions(
  c: Pick<
    Config,
    | "REPUTATION_SET_KEY"
    | "REPEAT_OFFENDER_THRESHOLD"
    | "REPUTATION_REFRESH_S"
    | "IP_HASH_KEY"
    | "ALERT_LIST_KEY"
  >,
  opts: { cluster?: boolean } = {},
): ReputationCacheOptions | undefined {
  const offenders = c.REPEAT_OFFENDER_THRESHOLD > 0;
  if (!c.REPUTATION_SET_KEY && !offenders) return undefined;
  return {
    feedKey: c.REPUTATION_SET_KEY,
    // Where the alert function keeps them (core/alert/keys.ts).
    offendersKey: offenders
      ? alertKeys(c.ALERT_LIST_KEY, c.REPUTATION_SET_KEY, opts).offenders
      : undefined,
    refreshMs: c.REPUTATION_REFRESH_S * 1000,
    ipHashKey: c.IP_HASH_KEY,
  };
}

export class ReputationCache implements MaliciousSource {
  private ips = new IpSet();
  private hashes = new Set<string>();
  private entries: Entry[] = [];
  private lastAttempt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<RefreshStats | undefined> | undefined;
  private readonly now: () => number;

  constructor(
    private readonly redis: RedisClient,
    private readonly opts: ReputationCacheOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  /** Entries in the current copy. */
  get size(): number {
    return this.ips.size + this.hashes.size;
  }

  has(ip: ParsedIp): boolean {
    this.refreshIfStale();
    if (this.ips.has(ip)) return true;
    if (this.hashes.size > 0 && this.opts.ipHashKey) {
      return this.hashes.has(
        maskIp(formatIp(ip), { ipMasking: "hash", ipHashKey: this.opts.ipHashKey }),
      );
    }
    return false;
  }

  /** Starts a background reload when the copy is stale and none is running. */
  refreshIfStale(): void {
    if (this.inflight || this.now() - this.lastAttempt < this.opts.refreshMs) return;
    this.refresh();
  }

  /**
   * Reloads now (joining a reload already running). Never rejects: on failure the old copy
   * stays, minus expired entries, and the promise resolves with undefined.
   */
  refresh(): Promise<RefreshStats | undefined> {
    this.inflight ??= this.load().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /**
   * The first load, awaited at cold start but bounded: past `timeoutMs` scoring starts with
   * what the static lists hold and the load finishes in the background.
   */
  async start(timeoutMs = 3000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.refresh(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref?.();
      }),
    ]);
    clearTimeout(timer);
  }

  private async load(): Promise<RefreshStats | undefined> {
    this.lastAttempt = this.now();
    const nowS = this.now() / 1000;
    try {
      const [feed, offenders] = await Promise.all([
        this.read(this.opts.feedKey, nowS),
        this.read(this.opts.offendersKey, nowS),
      ]);
      const invalid = this.swap([...feed, ...offenders]);
      const stats = { feed: feed.length, offenders: offenders.length, invalid };
      this.opts.logger?.debug("reputation sources reloaded", stats);
      return stats;
    } catch (err) {
      this.swap(this.entries.filter((e) => e.expiresAt > nowS));
      this.opts.logger?.warn("reputation reload failed: keeping the previous copy", {
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
        entries: this.size,
      });
      return undefined;
    }
  }

  private async read(key: string | undefined, nowS: number): Promise<Entry[]> {
    if (!key) return [];
    try {
      const flat = await this.redis.zrangebyscore(key, `(${nowS}`, "+inf", "WITHSCORES");
      return Object.entries(fieldMap<string>(flat)).map(([entry, score]) => ({
        entry,
        expiresAt: Number(score),
      }));
    } catch (err) {
      if (!/WRONGTYPE/.test((err as Error)?.message ?? "")) throw err;
      // A plain set: entries without expiry.
      const members = await this.redis.smembers(key);
      return members.map((entry) => ({ entry, expiresAt: Number.POSITIVE_INFINITY }));
    }
  }

  /** Builds a new copy and swaps it in; returns how many entries were not IPs/CIDRs/hashes. */
  private swap(entries: Entry[]): number {
    const ips = new IpSet();
    const hashes = new Set<string>();
    const kept: Entry[] = [];
    const bad: string[] = [];
    for (const e of entries) {
      if (e.entry.startsWith("h:")) {
        hashes.add(e.entry);
        kept.push(e);
        continue;
      }
      try {
        ips.add(e.entry);
        kept.push(e);
      } catch {
        bad.push(e.entry.slice(0, 60));
      }
    }
    if (bad.length > 0) {
      this.opts.logger?.warn("reputation entries ignored: not an IP, CIDR or IP hash", {
        count: bad.length,
        examples: bad.slice(0, 3),
      });
    }
    this.ips = ips;
    this.hashes = hashes;
    this.entries = kept;
    return bad.length;
  }
}
