/**
 * Repeat offenders (reference §3): `REPEAT_OFFENDER_THRESHOLD` critical alerts from one client
 * within `REPEAT_OFFENDER_WINDOW_S` make it malicious for `REPEAT_OFFENDER_TTL_S`.
 *
 * The alert function counts (it hears every critical, non-allowlisted event exactly once, as
 * the list deduplicates per tx_id); the scorer reads the result through its in-memory
 * reputation cache (cache.ts). Only `kind: "event"` alerts count: a campaign alert sums up
 * events whose own alerts were counted already. Keys (core/alert/keys.ts):
 * - `<offenders key>` sorted set: member = offender entry, score = unix seconds it stays
 *   malicious until (only ever extended);
 * - `<offenders key>:window:<entry>` sorted set of the entry's recent tx_ids scored by time
 *   (ms), trimmed to the window and to the newest `threshold` members.
 *
 * Alerts carry the IP as masked by `IP_MASKING`, so detection works on what the alert holds:
 * `off` → the address; `truncate` → its /24 (IPv4) or /48 (IPv6) network, so the whole
 * network is counted and marked together; `hash` → the `h:…` hash, which the scorer matches
 * by hashing each client IP with the same `IP_HASH_KEY`.
 */
import type { AlertKind } from "../alert/alert.ts";
import { offenderWindowKey } from "../alert/keys.ts";
import { formatIp, parseIp } from "../event/ip.ts";
import type { RedisClient } from "../lib/redis.ts";
import type { IpMasking } from "../privacy/privacy.ts";

/** The offenders key for a configuration (the scorer's cache reads it): see core/alert/keys.ts. */
export { offendersKey } from "../alert/keys.ts";

/**
 * The reputation entry an alert's (possibly masked) client IP stands for, or undefined when
 * it cannot stand for anything (e.g. `invalid`).
 * @example offenderEntry("203.0.113.0", "truncate") // "203.0.113.0/24"
 */
export function offenderEntry(clientIp: string, masking: IpMasking): string | undefined {
  if (masking === "hash") return /^h:[0-9a-f]{16}$/.test(clientIp) ? clientIp : undefined;
  const ip = parseIp(clientIp);
  if (!ip) return undefined;
  if (masking === "truncate") return `${formatIp(ip)}/${ip.version === 4 ? 24 : 48}`;
  return formatIp(ip);
}

// KEYS[1] the entry's window set, KEYS[2] offenders set; ARGV[1] tx_id, ARGV[2] window ms,
// ARGV[3] threshold, ARGV[4] ttl s, ARGV[5] entry. Returns 2 when this alert made the entry an
// offender, 1 when it already was one (its expiry is extended), 0 otherwise.
const RECORD = `
local t = redis.call('TIME')
local nowMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local threshold = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], nowMs, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (nowMs - tonumber(ARGV[2])))
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(threshold + 1))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= threshold then
  local nowS = tonumber(t[1])
  local before = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[5]) or '0') or math.huge
  redis.call('ZADD', KEYS[2], 'GT', nowS + tonumber(ARGV[4]), ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. nowS)
  if before > nowS then return 1 end
  return 2
end
return 0
`;

export interface RepeatOffendersOptions {
  /** The offenders' set: `alertKeys(ALERT_LIST_KEY, REPUTATION_SET_KEY).offenders`. */
  key: string;
  threshold: number;
  windowSeconds: number;
  ttlSeconds: number;
  masking: IpMasking;
}

/** The alert function's side: counts critical alerts per client and marks offenders. */
export class RepeatOffenders {
  constructor(
    private readonly redis: RedisClient,
    private readonly opts: RepeatOffendersOptions,
  ) {
    redis.defineCommand("wafRecordOffence", { numberOfKeys: 2, lua: RECORD });
  }

  windowKey(entry: string): string {
    return offenderWindowKey(this.opts.key, entry);
  }

  /**
   * Counts each alert against its client; resolves with the entries this call made offenders
   * (ones that already were have their expiry extended and are not returned). One round trip.
   */
  async record(
    alerts: ReadonlyArray<{ client_ip: string; tx_id: string; kind?: AlertKind }>,
  ): Promise<string[]> {
    if (this.opts.threshold <= 0) return [];
    const entries: string[] = [];
    const pipeline = this.redis.pipeline();
    for (const a of alerts) {
      if (a.kind !== undefined && a.kind !== "event") continue;
      const entry = offenderEntry(a.client_ip, this.opts.masking);
      if (!entry) continue;
      entries.push(entry);
      (
        pipeline as unknown as { wafRecordOffence(...args: Array<string | number>): void }
      ).wafRecordOffence(
        this.windowKey(entry),
        this.opts.key,
        a.tx_id,
        this.opts.windowSeconds * 1000,
        this.opts.threshold,
        this.opts.ttlSeconds,
        entry,
      );
    }
    if (entries.length === 0) return [];
    const results = (await pipeline.exec()) ?? [];
    const offenders = new Set<string>();
    results.forEach(([err, res], i) => {
      if (err) throw err;
      if (res === 2) offenders.add(entries[i] as string);
    });
    return [...offenders];
  }
}
