/**
 * Notification throttling (reference §4): per channel and (client IP, category), in windows of
 * `ALERT_THROTTLE_S`. The first alert of a window is sent; later ones are counted; the count
 * is summarised once, after the window ended ("and 37 more from 203.0.113.9 in 5 min").
 *
 * State lives in Redis, changed only by Lua scripts, so every alert-function instance agrees
 * and each summary is claimed by exactly one of them. Windows are timed by Redis' clock.
 *
 * Lambda has no timers between invocations, so a summary goes out with whichever comes first:
 * - the first alert of the same (IP, category) after the window ended carries it (`previous`);
 * - any invocation of the alert function (any IP, even one carrying only duplicates or no
 *   alerts at all, such as a scheduled tick) sweeps windows that ended and sends their
 *   summaries on their own.
 * A summary no invocation claims within `keepSeconds` after its window is dropped.
 *
 * Keys (prefix `P`, channel `C`):
 * - `P:C:<category>:<ip>` hash {start (ms), count, first (tx_id), ip, cat, win (s)}; expires at
 *   the window's end while nothing was suppressed, `keepSeconds` later once something was;
 * - `P:C:due` sorted set of those hashes with suppressed alerts, scored by window end (ms).
 */
import type { RedisClient } from "../lib/redis.ts";
import type { Alert } from "./alert.ts";
import { type ThrottleSummary, throttleKeyOf } from "./notification.ts";

// KEYS[1] state hash, KEYS[2] due set; ARGV[1] window ms, ARGV[2] tx_id, ARGV[3] keep ms,
// ARGV[4] ip, ARGV[5] category. Returns {0} (suppressed), {1} (send), or
// {1, count, start, first} (send, and the previous window of this key suppressed `count`).
const ADMIT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local keep = tonumber(ARGV[3])
local start = tonumber(redis.call('HGET', KEYS[1], 'start') or '')
if start and now < start + window then
  local n = redis.call('HINCRBY', KEYS[1], 'count', 1)
  if n == 1 then
    redis.call('ZADD', KEYS[2], start + window, KEYS[1])
    redis.call('PEXPIRE', KEYS[1], start + window - now + keep)
    if redis.call('PTTL', KEYS[2]) < window + keep then
      redis.call('PEXPIRE', KEYS[2], window + keep)
    end
  end
  return {0}
end
local out = {1}
if start then
  local h = redis.call('HMGET', KEYS[1], 'count', 'first')
  local count = tonumber(h[1] or '0')
  if count > 0 and redis.call('ZREM', KEYS[2], KEYS[1]) == 1 then
    out = {1, count, start, h[2] or ''}
  end
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'start', now, 'count', 0, 'first', ARGV[2], 'ip', ARGV[4], 'cat', ARGV[5], 'win', math.floor(window / 1000))
redis.call('PEXPIRE', KEYS[1], window)
return out
`;

// KEYS[1] due set; ARGV[1] how many at most. Claims windows that ended: returns a flat list
// {start, count, first, ip, cat, win, ...} and deletes what it returned.
const SWEEP = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, k in ipairs(due) do
  redis.call('ZREM', KEYS[1], k)
  local h = redis.call('HMGET', k, 'start', 'count', 'first', 'ip', 'cat', 'win')
  if h[1] and tonumber(h[2] or '0') > 0 then
    for i = 1, 6 do out[#out + 1] = h[i] or '' end
    redis.call('DEL', k)
  end
end
return out
`;

export interface ThrottleOptions {
  /** Key prefix, e.g. `waf-alerts:throttle`. */
  prefix: string;
  /** `ALERT_THROTTLE_S`; 0 turns throttling off. */
  windowSeconds: number;
  /** How long an unclaimed summary is kept after its window ends. Default one day. */
  keepSeconds?: number;
}

export interface ThrottleDecision {
  alert: Alert;
  send: boolean;
  /** The previous window's summary, claimed by this alert (send it along). */
  previous?: ThrottleSummary;
}

/** The throttle port the notifier uses (this Redis implementation, or a fake in unit tests). */
export interface Throttle {
  admit(channel: string, alerts: readonly Alert[]): Promise<ThrottleDecision[]>;
  due(channel: string, limit?: number): Promise<ThrottleSummary[]>;
}

interface ThrottleCommands {
  wafThrottleAdmit(...args: Array<string | number>): void;
}

export class NotificationThrottle implements Throttle {
  private readonly keepMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly opts: ThrottleOptions,
  ) {
    this.keepMs = (opts.keepSeconds ?? 86_400) * 1000;
    redis.defineCommand("wafThrottleAdmit", { numberOfKeys: 2, lua: ADMIT });
    redis.defineCommand("wafThrottleSweep", { numberOfKeys: 1, lua: SWEEP });
  }

  get windowSeconds(): number {
    return this.opts.windowSeconds;
  }

  stateKey(channel: string, alert: Alert): string {
    const k = throttleKeyOf(alert);
    return `${this.opts.prefix}:${channel}:${k.category}:${k.clientIp}`;
  }

  dueKey(channel: string): string {
    return `${this.opts.prefix}:${channel}:due`;
  }

  /** Decides, in order, which alerts a channel sends now. One round trip. */
  async admit(channel: string, alerts: readonly Alert[]): Promise<ThrottleDecision[]> {
    if (alerts.length === 0) return [];
    if (this.opts.windowSeconds <= 0) return alerts.map((alert) => ({ alert, send: true }));
    const windowMs = this.opts.windowSeconds * 1000;
    const pipeline = this.redis.pipeline();
    for (const a of alerts) {
      const k = throttleKeyOf(a);
      (pipeline as unknown as ThrottleCommands).wafThrottleAdmit(
        this.stateKey(channel, a),
        this.dueKey(channel),
        windowMs,
        a.tx_id,
        this.keepMs,
        k.clientIp,
        k.category,
      );
    }
    const results = (await pipeline.exec()) ?? [];
    return alerts.map((alert, i) => {
      const [err, res] = results[i] ?? [new Error("no reply"), undefined];
      if (err) throw err;
      const r = res as Array<number | string>;
      if (Number(r[0]) !== 1) return { alert, send: false };
      if (r.length < 4) return { alert, send: true };
      const k = throttleKeyOf(alert);
      return {
        alert,
        send: true,
        previous: {
          clientIp: k.clientIp,
          category: k.category,
          suppressed: Number(r[1]),
          windowStart: Number(r[2]),
          windowSeconds: this.opts.windowSeconds,
          firstTxId: String(r[3]),
        },
      };
    });
  }

  /** Claims up to `limit` windows of a channel that ended with suppressed alerts. */
  async due(channel: string, limit = 50): Promise<ThrottleSummary[]> {
    if (this.opts.windowSeconds <= 0) return [];
    const flat = (await (
      this.redis as unknown as { wafThrottleSweep(key: string, limit: number): Promise<string[]> }
    ).wafThrottleSweep(this.dueKey(channel), limit)) as string[];
    const out: ThrottleSummary[] = [];
    for (let i = 0; i + 5 < flat.length; i += 6) {
      out.push({
        windowStart: Number(flat[i]),
        suppressed: Number(flat[i + 1]),
        firstTxId: String(flat[i + 2]),
        clientIp: String(flat[i + 3]),
        category: String(flat[i + 4]),
        windowSeconds: Number(flat[i + 5]) || this.opts.windowSeconds,
      });
    }
    return out;
  }
}
