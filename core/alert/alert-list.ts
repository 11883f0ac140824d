/**
 * The alert list (reference §4): Redis list `ALERT_LIST_KEY`, newest first, bounded length and
 * retention, exactly one entry per `tx_id` however often the alert arrives.
 *
 * One Lua script does dedup + push + trim atomically, so no crash can leave an alert marked
 * as seen but not listed (or listed twice). The same script opens the alert's notification
 * progress (throttle.ts): channels record there which of them finished, so a retry after a
 * crash notifies exactly the channels that did not (issue 12 row 12). Keys: core/alert/keys.ts.
 */
import { isCluster, type RedisClient } from "../lib/redis.ts";
import type { Alert } from "./alert.ts";
import { type AlertKeys, alertKeys } from "./keys.ts";
import type { PushResult } from "./ports.ts";

// KEYS[1] list, KEYS[2] dedup key, KEYS[3] progress hash; ARGV[1] alert JSON (without
// listed_at), ARGV[2] max length, ARGV[3] retention seconds. Returns 1 when listed, 0 when the
// tx_id was already listed.
const PUSH_SCRIPT = `
local now = tonumber(redis.call('TIME')[1])
if not redis.call('SET', KEYS[2], now, 'NX', 'EX', ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[3], '_', now)
redis.call('EXPIRE', KEYS[3], ARGV[3])
local entry = string.sub(ARGV[1], 1, -2) .. ',"listed_at":' .. now .. '}'
redis.call('LPUSH', KEYS[1], entry)
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
-- Retention: drop entries listed before the cutoff from the old end.
local cutoff = now - tonumber(ARGV[3])
for _ = 1, 100 do
  local last = redis.call('LINDEX', KEYS[1], -1)
  if not last then break end
  local at = tonumber(string.match(last, '"listed_at":(%d+)}$'))
  if at == nil or at >= cutoff then break end
  redis.call('RPOP', KEYS[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
`;

export interface AlertListOptions {
  listKey: string;
  maxLength: number;
  retentionSeconds: number;
}

/** A listed alert: the alert plus the server time it was listed at. */
export type ListedAlert = Alert & { listed_at: number };

export class AlertList {
  private readonly keys: AlertKeys;

  constructor(
    private readonly redis: RedisClient,
    private readonly opts: AlertListOptions,
  ) {
    this.keys = alertKeys(opts.listKey, undefined, { cluster: isCluster(redis) });
    redis.defineCommand("wafPushAlert", { numberOfKeys: 3, lua: PUSH_SCRIPT });
  }

  /** The dedup key of a transaction: kept as long as the list's retention. */
  dedupKey(txId: string): string {
    return this.keys.seen(txId);
  }

  /**
   * Lists each alert unless its tx_id was listed before. Resolves with the alerts that were
   * newly listed and, once per tx_id, those listed before (a redelivery, or the retry of an
   * invocation that crashed: channels that did not finish them still must). Rejects on Redis
   * errors: the caller retries the whole call, which is safe.
   */
  async push(alerts: readonly Alert[]): Promise<PushResult> {
    if (alerts.length === 0) return { listed: [], redelivered: [] };
    const pipeline = this.redis.pipeline();
    for (const a of alerts) {
      (pipeline as unknown as PushPipeline).wafPushAlert(
        this.keys.list,
        this.keys.seen(a.tx_id),
        this.keys.progress(a.tx_id),
        JSON.stringify(a),
        this.opts.maxLength,
        this.opts.retentionSeconds,
      );
    }
    const results = (await pipeline.exec()) ?? [];
    const listed: Alert[] = [];
    const before = new Map<string, Alert>();
    results.forEach(([err, res], i) => {
      if (err) throw err;
      const a = alerts[i] as Alert;
      if (res === 1) listed.push(a);
      else if (!before.has(a.tx_id)) before.set(a.tx_id, a);
    });
    for (const a of listed) before.delete(a.tx_id);
    return { listed, redelivered: [...before.values()] };
  }

  /** The newest `count` alerts, newest first. */
  async recent(count = 100): Promise<ListedAlert[]> {
    const raw = await this.redis.lrange(this.opts.listKey, 0, count - 1);
    return raw.map((r) => JSON.parse(r) as ListedAlert);
  }
}

interface PushPipeline {
  wafPushAlert(
    list: string,
    dedup: string,
    progress: string,
    json: string,
    max: number,
    ttl: number,
  ): void;
}

/**
 * A listed alert as read back by tools (`waf alerts`, the live view): the fields of
 * {@link ListedAlert}, every one possibly missing or of another type (older versions, other
 * writers, hand-edited lists). Render only what checks out.
 */
export interface ListedAlertRow {
  timestamp?: number;
  severity?: number;
  severity_level?: string;
  client_ip?: string;
  rule_id?: string;
  categories?: string[];
  uri?: string;
  method?: string;
  tx_id?: string;
  anomaly_score?: number;
  listed_at?: number;
  [key: string]: unknown;
}

/** One list entry as an object; undefined when it is not a JSON object. */
export function parseListedAlert(raw: string): ListedAlertRow | undefined {
  try {
    const v = JSON.parse(raw) as unknown;
    return v !== null && typeof v === "object" && !Array.isArray(v)
      ? (v as ListedAlertRow)
      : undefined;
  } catch {
    return undefined;
  }
}

const PAGE = 500;

/**
 * The list, newest first, a page of raw entries at a time, up to `maxScan` entries (the list
 * may hold ALERT_LIST_MAX of them). Stop iterating to stop reading.
 */
export async function* alertListPages(
  redis: RedisClient,
  listKey: string,
  maxScan = Number.POSITIVE_INFINITY,
): AsyncGenerator<string[]> {
  for (let start = 0; start < maxScan; start += PAGE) {
    const raw = await redis.lrange(listKey, start, Math.min(start + PAGE, maxScan) - 1);
    if (raw.length > 0) yield raw;
    if (raw.length < PAGE) return;
  }
}

/** The list's length and when its newest alert was listed (unix seconds). */
export async function alertListSummary(
  redis: RedisClient,
  listKey: string,
): Promise<{ length: number; newestListedAt: number | undefined }> {
  const [lenRes, headRes] = (await redis.pipeline().llen(listKey).lindex(listKey, 0).exec()) ?? [];
  const [lenErr, length] = lenRes ?? [null, 0];
  const [headErr, head] = headRes ?? [null, null];
  if (lenErr) throw lenErr;
  if (headErr) throw headErr;
  const m = typeof head === "string" ? /"listed_at":(\d+)\}$/.exec(head) : null;
  return { length: Number(length ?? 0), newestListedAt: m ? Number(m[1]) : undefined };
}
