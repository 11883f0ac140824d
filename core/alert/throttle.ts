/**
 * What a channel may send now, decided in Redis per alert in one atomic step (reference §4):
 *
 * 1. **Progress** (at-least-once, issue 12 row 12). The alert list marks each newly listed
 *    tx_id in a progress hash (alert-list.ts); each channel claims its field there before
 *    notifying (a lease: `lease:<until ms>:<owner>`) and sets it to `done` once finished. An
 *    alert whose field is `done` is never notified again on that channel; one whose lease is
 *    live is being notified by another invocation; one whose lease expired, or is held by an
 *    earlier attempt of the same invocation (Lambda and the local runtime keep the request ID
 *    across retries), is claimed again. So an invocation that crashed after listing is
 *    completed by its retry, channel by channel, and a channel that finished is never asked
 *    twice. A hash that does not exist (listed before progress was kept, or past the list's
 *    retention) means nothing is left to do.
 * 2. **Throttle** per channel and (canonical client, category) in windows of
 *    `ALERT_THROTTLE_S`: the first alert of a window is sent; later ones are counted (and
 *    marked `done`: a retry never counts them twice); the count is summarised once, after the
 *    window ended ("and 37 more from 203.0.113.9 in 5 min"). A retry of a window's first alert
 *    is sent again.
 * 3. **Rate cap** per channel, `ALERT_CHANNEL_RATE_PER_MIN` notifications a minute (a window
 *    of one minute opens with the first notification it counts). What it holds back — alerts,
 *    and due summaries — is counted into one summary per channel ("and 940 more held back by
 *    the channel's rate cap"), which goes out like any throttle summary, once its minute is
 *    over, and is never held back itself.
 *
 * Windows are timed by Redis' clock. Lambda has no timers between invocations, so a summary
 * goes out with whichever comes first: the first alert of the same key after the window ended
 * carries it (`previous`), or any invocation of the alert function (even one with no alerts,
 * such as a scheduled tick) sweeps windows that ended and sends their summaries on their own.
 * A summary no invocation claims within `keepSeconds` after its window is dropped, and one
 * claimed by an invocation that then crashed is lost (summaries are at-most-once).
 *
 * Keys (core/alert/keys.ts): per tx_id `progress`; per channel `C`: `throttle(C, category,
 * client)` hash {start (ms), count, first (tx_id), ip, cat, win (s)}, expiring at the window's
 * end while nothing was suppressed and `keepSeconds` later once something was; `throttleDue(C)`
 * sorted set of those hashes with suppressed alerts, by window end (ms); `rate(C)` hash {s
 * (window start, ms), n}; `held(C)` a window hash like the others (`ip` and `cat` `*`).
 */
import type { ChainableCommander } from "ioredis";
import type { RedisClient } from "../lib/redis.ts";
import type { Alert } from "./alert.ts";
import type { AlertKeys } from "./keys.ts";
import { ANY_CLIENT, type ThrottleSummary, throttleKeyOf } from "./notification.ts";

/** Length of the window a channel's rate cap counts in, and of its held-back summary's window. */
const RATE_WINDOW_MS = 60_000;

// Shared by both scripts. `now` is Redis' clock in ms; RATE_MS the rate cap's window, the
// script's last argument.
const LUA_HELPERS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local RATE_MS = tonumber(ARGV[#ARGV])
local function keepDue(due, ttl)
  if redis.call('PTTL', due) < ttl then redis.call('PEXPIRE', due, ttl) end
end
-- Takes one slot of the channel's rate cap; false when the window's cap is reached. A window
-- opens with the first notification it counts and lasts RATE_MS.
local function takeRate(rate, limit)
  if limit <= 0 then return true end
  local start = tonumber(redis.call('HGET', rate, 's') or '')
  if not start or now >= start + RATE_MS then
    redis.call('HSET', rate, 's', now, 'n', 0)
    redis.call('PEXPIRE', rate, RATE_MS)
  end
  if tonumber(redis.call('HGET', rate, 'n')) >= limit then return false end
  redis.call('HINCRBY', rate, 'n', 1)
  return true
end
-- Counts n held-back notifications into the channel's held-back window (opened if needed).
local function hold(held, due, n, first, keep)
  if redis.call('EXISTS', held) == 0 then
    redis.call('HSET', held, 'start', now, 'count', 0, 'first', first, 'ip', '${ANY_CLIENT}', 'cat', '${ANY_CLIENT}', 'win', math.floor(RATE_MS / 1000))
  end
  redis.call('HINCRBY', held, 'count', n)
  local start = tonumber(redis.call('HGET', held, 'start'))
  redis.call('ZADD', due, start + RATE_MS, held)
  redis.call('PEXPIRE', held, math.max(0, start + RATE_MS - now) + keep)
  keepDue(due, RATE_MS + keep)
end
`;

// KEYS[1] progress hash of the tx_id, KEYS[2] throttle window, KEYS[3] due set, KEYS[4] rate,
// KEYS[5] held-back window. ARGV[1] channel, ARGV[2] owner, ARGV[3] lease ms, ARGV[4] window
// ms (0: no per-key throttle), ARGV[5] tx_id, ARGV[6] keep ms, ARGV[7] client, ARGV[8]
// category, ARGV[9] rate cap a minute (0: none), ARGV[10] the rate cap's window ms.
// Returns {2} (nothing to do: done, claimed by another, or unknown), {0} (throttled), {3} (held
// back by the rate cap), {1} (send), or {1, count, start, first} (send, with the previous
// window's summary).
const ADMIT = `${LUA_HELPERS}
local progress, state, due, rate, held = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local channel, owner, tx = ARGV[1], ARGV[2], ARGV[5]
local window, keep, limit = tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[9])
if redis.call('EXISTS', progress) == 0 then return {2} end
local f = redis.call('HGET', progress, channel)
if f then
  if f == 'done' then return {2} end
  local untilMs, by = string.match(f, '^lease:(%d+):(.*)$')
  if by ~= owner and tonumber(untilMs or '0') > now then return {2} end
end
redis.call('HSET', progress, channel, 'lease:' .. (now + tonumber(ARGV[3])) .. ':' .. owner)
local out = {1}
if window > 0 then
  local start = tonumber(redis.call('HGET', state, 'start') or '')
  if start and now < start + window then
    if redis.call('HGET', state, 'first') == tx then return {1} end
    local n = redis.call('HINCRBY', state, 'count', 1)
    if n == 1 then
      redis.call('ZADD', due, start + window, state)
      redis.call('PEXPIRE', state, start + window - now + keep)
      keepDue(due, window + keep)
    end
    redis.call('HSET', progress, channel, 'done')
    return {0}
  end
  if start then
    local h = redis.call('HMGET', state, 'count', 'first')
    local count = tonumber(h[1] or '0')
    if count > 0 and redis.call('ZREM', due, state) == 1 then
      out = {1, count, start, h[2] or ''}
    end
    redis.call('DEL', state)
  end
  redis.call('HSET', state, 'start', now, 'count', 0, 'first', tx, 'ip', ARGV[7], 'cat', ARGV[8], 'win', math.floor(window / 1000))
  redis.call('PEXPIRE', state, window)
end
if not takeRate(rate, limit) then
  -- Held back, together with the previous window's summary it claimed.
  hold(held, due, 1 + (out[2] or 0), tx, keep)
  redis.call('HSET', progress, channel, 'done')
  return {3}
end
return out
`;

// KEYS[1] due set, KEYS[2] rate, KEYS[3] held-back window. ARGV[1] how many at most, ARGV[2]
// rate cap a minute, ARGV[3] keep ms, ARGV[4] the rate cap's window ms. Claims windows that ended: returns a flat list
// {start, count, first, ip, cat, win, ...} and deletes what it returned; a window over the
// rate cap is counted into the held-back window instead (returned once that one ends).
const SWEEP = `${LUA_HELPERS}
local due, rate, held = KEYS[1], KEYS[2], KEYS[3]
local limit, keep = tonumber(ARGV[2]), tonumber(ARGV[3])
local ended = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, k in ipairs(ended) do
  redis.call('ZREM', due, k)
  local h = redis.call('HMGET', k, 'start', 'count', 'first', 'ip', 'cat', 'win')
  local count = tonumber(h[2] or '0')
  if h[1] and count > 0 then
    redis.call('DEL', k)
    if k == held or takeRate(rate, limit) then
      for i = 1, 6 do out[#out + 1] = h[i] or '' end
    else
      hold(held, due, count, h[3] or '', keep)
    end
  end
end
return out
`;

// KEYS[1] progress hash; ARGV[1] channel, ARGV[2] owner, ARGV[3] 1 (done) or 0 (not done:
// give the claim back if it is still the owner's). Only while the hash lives.
const SETTLE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], ARGV[1], 'done')
  return 1
end
local f = redis.call('HGET', KEYS[1], ARGV[1])
if f then
  local _, by = string.match(f, '^lease:(%d+):(.*)$')
  if by == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
end
return 1
`;

export interface ThrottleOptions {
  /** The alert side's keys (core/alert/keys.ts). */
  keys: AlertKeys;
  /** `ALERT_THROTTLE_S`; 0 turns the per-key throttle off. */
  windowSeconds: number;
  /** `ALERT_CHANNEL_RATE_PER_MIN`; 0 turns the rate cap off. */
  ratePerMinute?: number;
  /**
   * How long a channel's claim on an alert lasts: longer than one invocation's deliveries
   * (`NOTIFY_DEADLINE_MS` and some), so a live invocation is never taken over.
   */
  leaseMs: number;
  /** How long an unclaimed summary is kept after its window ends. Default one day. */
  keepSeconds?: number;
  /** The rate cap's window: a minute (tests shorten it). */
  rateWindowMs?: number;
}

export interface ThrottleDecision {
  alert: Alert;
  send: boolean;
  /** Why it is not sent: throttled, held back by the rate cap, or handled elsewhere already. */
  reason?: "throttled" | "rate-cap" | "handled";
  /** The previous window's summary, claimed by this alert (send it along). */
  previous?: ThrottleSummary;
}

/**
 * The port the notifier uses (this Redis implementation, or a fake in unit tests): which
 * alerts a channel sends now, which ones it finished, and which throttle summaries are due.
 */
export interface Throttle {
  /**
   * Decides, in order, which alerts a channel sends now, claiming them for `owner` (the
   * invocation's request ID).
   */
  admit(channel: string, alerts: readonly Alert[], owner: string): Promise<ThrottleDecision[]>;
  /**
   * Records what became of the alerts `owner` claimed: `done` ones are never notified again on
   * the channel; `undone` ones (receiver down, deadline, circuit open) are given back, so the
   * next invocation that brings them tries again.
   */
  settle(
    channel: string,
    owner: string,
    outcome: { done: readonly string[]; undone: readonly string[] },
  ): Promise<void>;
  /** Claims up to `limit` summaries of the channel that came due. */
  due(channel: string, limit?: number): Promise<ThrottleSummary[]>;
}

interface Commands {
  wafNotifyAdmit(...args: Array<string | number>): void;
  wafNotifySettle(key: string, channel: string, owner: string, done: number): void;
}

export class NotificationThrottle implements Throttle {
  private readonly keepMs: number;
  private readonly rate: number;
  private readonly rateWindowMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly opts: ThrottleOptions,
  ) {
    this.keepMs = (opts.keepSeconds ?? 86_400) * 1000;
    this.rate = Math.max(0, opts.ratePerMinute ?? 0);
    this.rateWindowMs = opts.rateWindowMs ?? RATE_WINDOW_MS;
    redis.defineCommand("wafNotifyAdmit", { numberOfKeys: 5, lua: ADMIT });
    redis.defineCommand("wafNotifySweep", { numberOfKeys: 3, lua: SWEEP });
    redis.defineCommand("wafNotifySettle", { numberOfKeys: 1, lua: SETTLE });
  }

  get windowSeconds(): number {
    return this.opts.windowSeconds;
  }

  stateKey(channel: string, alert: Alert): string {
    const k = throttleKeyOf(alert);
    return this.opts.keys.throttle(channel, k.category, k.clientIp);
  }

  /** One round trip for all alerts. Rejects on Redis errors. */
  async admit(
    channel: string,
    alerts: readonly Alert[],
    owner: string,
  ): Promise<ThrottleDecision[]> {
    if (alerts.length === 0) return [];
    const { keys } = this.opts;
    const windowMs = Math.max(0, this.opts.windowSeconds) * 1000;
    const pipeline = this.redis.pipeline();
    for (const a of alerts) {
      const k = throttleKeyOf(a);
      (pipeline as unknown as Commands).wafNotifyAdmit(
        keys.progress(a.tx_id),
        keys.throttle(channel, k.category, k.clientIp),
        keys.throttleDue(channel),
        keys.rate(channel),
        keys.held(channel),
        channel,
        owner,
        this.opts.leaseMs,
        windowMs,
        a.tx_id,
        this.keepMs,
        k.clientIp,
        k.category,
        this.rate,
        this.rateWindowMs,
      );
    }
    const results = (await pipeline.exec()) ?? [];
    return alerts.map((alert, i) => {
      const [err, res] = results[i] ?? [new Error("no reply"), undefined];
      if (err) throw err;
      const r = res as Array<number | string>;
      const code = Number(r[0]);
      if (code === 0) return { alert, send: false, reason: "throttled" };
      if (code === 2) return { alert, send: false, reason: "handled" };
      if (code === 3) return { alert, send: false, reason: "rate-cap" };
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

  async settle(
    channel: string,
    owner: string,
    outcome: { done: readonly string[]; undone: readonly string[] },
  ): Promise<void> {
    if (outcome.done.length + outcome.undone.length === 0) return;
    const pipeline = this.redis.pipeline() as unknown as Commands & ChainableCommander;
    for (const [txIds, done] of [
      [outcome.done, 1],
      [outcome.undone, 0],
    ] as const) {
      for (const tx of txIds) {
        pipeline.wafNotifySettle(this.opts.keys.progress(tx), channel, owner, done);
      }
    }
    for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err;
  }

  async due(channel: string, limit = 50): Promise<ThrottleSummary[]> {
    const { keys } = this.opts;
    const flat = (await (
      this.redis as unknown as {
        wafNotifySweep(...args: Array<string | number>): Promise<string[]>;
      }
    ).wafNotifySweep(
      keys.throttleDue(channel),
      keys.rate(channel),
      keys.held(channel),
      limit,
      this.rate,
      this.keepMs,
      this.rateWindowMs,
    )) as string[];
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
