/**
 * Campaign state in Redis: {@link applyCampaignEvents} (core/alert/campaign.ts) performed
 * atomically by one Lua script per client and window, so every scorer instance agrees and a
 * window fires once however the events are spread over batches, instances and crashes.
 *
 * Key layout (core/alert/keys.ts `campaignKey`): one hash per client and window,
 * `<ALERT_LIST_KEY>:campaign:{<client key>:<window start>}` (the braces make it one Redis
 * Cluster hash slot on its own), expiring `ttlSeconds` after its last update. Fields:
 * - `n` events counted, `b` of them blocked, `s` highest severity, `a` highest anomaly score
 *   (as decimal strings), `ip` the first event's address as written, `f` 1 once the window fired;
 * - `nc` categories kept, `c:<prefix>` = order of first appearance, `k` attack categories among
 *   them; `nr` rules kept, `r:<rule id>` = events with that rule;
 * - `t:<first 16 hex digits of SHA-1(tx_id)>` = 1 per counted transaction, written only until
 *   the window fires (at most `CAMPAIGN_MIN_EVENTS` of them), looked up after.
 *
 * The script answers `{0}`, or `{1, field, value, …}` (every field but `t:`) when the caller
 * must raise the campaign alert: the window fired in this call, or had fired and this call
 * redelivers a transaction it counted (the list deduplicates the alert's `tx_id`).
 */
import type { RedisClient } from "../lib/redis.ts";
import {
  CAMPAIGN_MIN_CATEGORIES,
  type CampaignEvent,
  type CampaignFigures,
  type CampaignSettings,
  campaignsEnabled,
  MAX_CAMPAIGN_CATEGORIES,
  MAX_CAMPAIGN_RULES,
  MAX_EVENT_RULES,
} from "./campaign.ts";
import { campaignKey } from "./keys.ts";

// KEYS[1] the window's hash; ARGV[1] ttl s, ARGV[2] min events, ARGV[3] events JSON
// [{t, b, s, a, ip, c: [...], r: [...]}], ARGV[4] max categories, ARGV[5] max rules,
// ARGV[6] attack categories that trigger, ARGV[7] max rules of one event.
export const CAMPAIGN_SCRIPT = `
local key = KEYS[1]
local minEvents = tonumber(ARGV[2])
if minEvents <= 0 then return {0} end
local events = cjson.decode(ARGV[3])
local maxCats = tonumber(ARGV[4])
local maxRules = tonumber(ARGV[5])
local minCats = tonumber(ARGV[6])
local maxEventRules = tonumber(ARGV[7])
local firedBefore = redis.call('HGET', key, 'f') == '1'
local fired = firedBefore
local redelivered = false
for _, e in ipairs(events) do
  local tf = 't:' .. string.sub(redis.sha1hex(tostring(e.t)), 1, 16)
  if redis.call('HEXISTS', key, tf) == 1 then
    redelivered = true
  elseif not fired then
    redis.call('HSET', key, tf, 1)
    local n = redis.call('HINCRBY', key, 'n', 1)
    if e.b then redis.call('HINCRBY', key, 'b', 1) end
    local s = redis.call('HGET', key, 's')
    if n == 1 or tonumber(e.s) > tonumber(s) then redis.call('HSET', key, 's', e.s) end
    local a = redis.call('HGET', key, 'a')
    if n == 1 or tonumber(e.a) > tonumber(a) then redis.call('HSET', key, 'a', e.a) end
    redis.call('HSETNX', key, 'ip', e.ip)
    for i, c in ipairs(e.c) do
      if i > maxCats then break end
      local nc = tonumber(redis.call('HGET', key, 'nc') or '0')
      if nc < maxCats and redis.call('HSETNX', key, 'c:' .. c, nc + 1) == 1 then
        redis.call('HSET', key, 'nc', nc + 1)
        local p = tonumber(c)
        if p and p >= 930 and p <= 944 then redis.call('HINCRBY', key, 'k', 1) end
      end
    end
    for i, r in ipairs(e.r) do
      if i > maxEventRules then break end
      if redis.call('HEXISTS', key, 'r:' .. r) == 1 then
        redis.call('HINCRBY', key, 'r:' .. r, 1)
      else
        local nr = tonumber(redis.call('HGET', key, 'nr') or '0')
        if nr < maxRules then
          redis.call('HSET', key, 'r:' .. r, 1)
          redis.call('HSET', key, 'nr', nr + 1)
        end
      end
    end
    local k = tonumber(redis.call('HGET', key, 'k') or '0')
    if n >= minEvents or k >= minCats then
      redis.call('HSET', key, 'f', 1)
      fired = true
    end
  end
end
if redis.call('EXISTS', key) == 1 then redis.call('EXPIRE', key, tonumber(ARGV[1])) end
if not (fired and ((not firedBefore) or redelivered)) then return {0} end
local out = {1}
local h = redis.call('HGETALL', key)
for i = 1, #h, 2 do
  if string.sub(h[i], 1, 2) ~= 't:' then
    out[#out + 1] = h[i]
    out[#out + 1] = h[i + 1]
  end
end
return out
`;

export interface CampaignStoreOptions {
  /** Key prefix: `alertKeys(ALERT_LIST_KEY).campaignPrefix` (core/alert/keys.ts). */
  prefix: string;
  settings: CampaignSettings;
  /**
   * How long a window's state outlives its last update; at least the window, plus time for
   * redeliveries. Default: the window + 15 minutes.
   */
  ttlSeconds?: number;
}

/** One client's events of one window, as {@link groupCampaignEvents} makes them. */
export interface CampaignGroup {
  clientKey: string;
  windowStart: number;
  events: CampaignEvent[];
}

/** A window that raises its campaign alert now, with the figures for {@link toCampaignAlert}. */
export interface RaisedCampaign {
  clientKey: string;
  windowStart: number;
  figures: CampaignFigures;
}

interface CampaignCommands {
  wafCampaign(...args: Array<string | number>): void;
}

/** Decodes the script's `{1, field, value, …}` reply into a window's figures. */
export function figuresOf(flat: readonly unknown[]): CampaignFigures {
  const fields = new Map<string, string>();
  for (let i = 1; i + 1 < flat.length; i += 2) fields.set(String(flat[i]), String(flat[i + 1]));
  const categories: Array<[string, number]> = [];
  const ruleCounts = new Map<string, number>();
  for (const [f, v] of fields) {
    if (f.startsWith("c:")) categories.push([f.slice(2), Number(v)]);
    else if (f.startsWith("r:")) ruleCounts.set(f.slice(2), Number(v));
  }
  return {
    events: Number(fields.get("n") ?? 0),
    blocked: Number(fields.get("b") ?? 0),
    maxSeverity: Number(fields.get("s") ?? 0),
    maxAnomaly: Number(fields.get("a") ?? 0),
    clientIp: fields.get("ip"),
    categories: categories.sort((x, y) => x[1] - y[1]).map(([c]) => c),
    ruleCounts,
  };
}

/** The campaign windows in Redis (the scorer's side). */
export class CampaignStore {
  private readonly ttlSeconds: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly opts: CampaignStoreOptions,
  ) {
    this.ttlSeconds = Math.max(
      opts.settings.windowSeconds,
      opts.ttlSeconds ?? opts.settings.windowSeconds + 900,
    );
    redis.defineCommand("wafCampaign", { numberOfKeys: 1, lua: CAMPAIGN_SCRIPT });
  }

  /** The hash of one client's window. */
  stateKey(clientKey: string, windowStart: number): string {
    return campaignKey(this.opts.prefix, clientKey, windowStart);
  }

  /**
   * Counts each group's events in its window (one round trip for all groups) and resolves
   * with the windows whose campaign alert must be raised now. Rejects on Redis errors: the
   * caller fails the batch's records of those clients, and their redelivery raises it then.
   */
  async apply(groups: readonly CampaignGroup[]): Promise<RaisedCampaign[]> {
    if (!campaignsEnabled(this.opts.settings) || groups.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const g of groups) {
      const events = g.events.map((e) => ({
        t: e.txId,
        b: e.blocked,
        // Strings: Lua numbers print with 14 significant digits.
        s: String(e.severity),
        a: String(e.anomalyScore),
        ip: e.clientIp,
        c: e.categories.slice(0, MAX_CAMPAIGN_CATEGORIES),
        r: e.rules.slice(0, MAX_EVENT_RULES),
      }));
      (pipeline as unknown as CampaignCommands).wafCampaign(
        this.stateKey(g.clientKey, g.windowStart),
        this.ttlSeconds,
        this.opts.settings.minEvents,
        // cjson decodes an empty array as an object; both iterate as nothing.
        JSON.stringify(events),
        MAX_CAMPAIGN_CATEGORIES,
        MAX_CAMPAIGN_RULES,
        CAMPAIGN_MIN_CATEGORIES,
        MAX_EVENT_RULES,
      );
    }
    const results = (await pipeline.exec()) ?? [];
    const raised: RaisedCampaign[] = [];
    groups.forEach((g, i) => {
      const [err, res] = results[i] ?? [new Error("no reply"), undefined];
      if (err) throw err;
      const flat = res as unknown[];
      if (Number(flat[0]) === 1) {
        raised.push({
          clientKey: g.clientKey,
          windowStart: g.windowStart,
          figures: figuresOf(flat),
        });
      }
    });
    return raised;
  }
}
