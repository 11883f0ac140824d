/**
 * The alert list (SPEC §4): Redis list `ALERT_LIST_KEY`, newest first, bounded length and
 * retention, exactly one entry per `tx_id` however often the alert arrives.
 *
 * One Lua script does dedup + push + trim atomically, so no crash can leave an alert marked
 * as seen but not listed (or listed twice).
 */
import type { Redis } from "ioredis";
import type { Alert } from "./alert.ts";

// KEYS[1] list, KEYS[2] dedup key; ARGV[1] alert JSON (without listed_at), ARGV[2] max length,
// ARGV[3] retention seconds. Returns 1 when listed, 0 when the tx_id was already listed.
const PUSH_SCRIPT = `
local now = tonumber(redis.call('TIME')[1])
if not redis.call('SET', KEYS[2], now, 'NX', 'EX', ARGV[3]) then
  return 0
end
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
  constructor(
    private readonly redis: Redis,
    private readonly opts: AlertListOptions,
  ) {
    redis.defineCommand("wafPushAlert", { numberOfKeys: 2, lua: PUSH_SCRIPT });
  }

  /** The dedup key of a transaction: kept as long as the list's retention. */
  dedupKey(txId: string): string {
    return `${this.opts.listKey}:seen:${txId}`;
  }

  /**
   * Lists each alert unless its tx_id was listed before. Resolves with the alerts that were
   * newly listed (the ones notification channels should hear about). Rejects on Redis errors:
   * the caller retries the whole call, which is safe.
   */
  async push(alerts: readonly Alert[]): Promise<Alert[]> {
    if (alerts.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const a of alerts) {
      (pipeline as unknown as PushPipeline).wafPushAlert(
        this.opts.listKey,
        this.dedupKey(a.tx_id),
        JSON.stringify(a),
        this.opts.maxLength,
        this.opts.retentionSeconds,
      );
    }
    const results = (await pipeline.exec()) ?? [];
    const listed: Alert[] = [];
    results.forEach(([err, res], i) => {
      if (err) throw err;
      if (res === 1) listed.push(alerts[i] as Alert);
    });
    return listed;
  }

  /** The newest `count` alerts, newest first. */
  async recent(count = 100): Promise<ListedAlert[]> {
    const raw = await this.redis.lrange(this.opts.listKey, 0, count - 1);
    return raw.map((r) => JSON.parse(r) as ListedAlert);
  }
}

interface PushPipeline {
  wafPushAlert(list: string, dedup: string, json: string, max: number, ttl: number): void;
}
