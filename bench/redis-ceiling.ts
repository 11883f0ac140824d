/**
 * The machine's own ceiling for consuming the stream: a consumer-group loop with ioredis that
 * does nothing but `XREADGROUP COUNT 500` and `XACK` the entries it got, over the same records
 * the pipeline reads. Anything the pipeline does on top costs throughput against this.
 */
import type { Redis } from "ioredis";
import type { RecordMix } from "./records.ts";

/** XADDs records `from`..`from+count-1` of the mix, pipelined `chunk` at a time; returns their IDs when asked. */
export async function xaddMix(
  redis: Redis,
  key: string,
  mix: RecordMix,
  from: number,
  count: number,
  opts: { chunk?: number; field?: string; keepIds?: boolean } = {},
): Promise<string[]> {
  const chunk = opts.chunk ?? 1000;
  const field = opts.field ?? "event";
  const ids: string[] = [];
  for (let start = from; start < from + count; start += chunk) {
    const end = Math.min(from + count, start + chunk);
    const p = redis.pipeline();
    for (let n = start; n < end; n++) p.xadd(key, "*", field, mix.text(n));
    const res = (await p.exec()) ?? [];
    for (const [err, id] of res) {
      if (err) throw err;
      if (opts.keepIds) ids.push(id as string);
    }
  }
  return ids;
}

export interface CeilingResult {
  redis_ceiling_records_per_s: number;
  redis_ceiling_records: number;
  redis_ceiling_s: number;
  /** XADD pipelined 1000 at a time, for reference (how fast the backlogs are written). */
  xadd_pipelined_records_per_s: number;
}

type Entries = Array<[string, Array<[string, string[]]>]> | null;

export async function measureCeiling(
  redis: Redis,
  mix: RecordMix,
  records: number,
): Promise<CeilingResult> {
  const key = "bench:ceiling";
  await redis.del(key);
  const t0 = performance.now();
  await xaddMix(redis, key, mix, 0, records);
  const xaddS = (performance.now() - t0) / 1000;
  await redis.xgroup("CREATE", key, "g", "0");
  let consumed = 0;
  const started = performance.now();
  for (;;) {
    const res = (await redis.xreadgroup(
      "GROUP",
      "g",
      "c",
      "COUNT",
      500,
      "STREAMS",
      key,
      ">",
    )) as Entries;
    const entries = res?.[0]?.[1] ?? [];
    if (entries.length === 0) break;
    await redis.xack(key, "g", ...entries.map(([id]) => id));
    consumed += entries.length;
  }
  const seconds = (performance.now() - started) / 1000;
  await redis.del(key);
  if (consumed !== records) throw new Error(`ceiling consumed ${consumed} of ${records}`);
  return {
    redis_ceiling_records_per_s: Math.round(consumed / seconds),
    redis_ceiling_records: consumed,
    redis_ceiling_s: Math.round(seconds * 1000) / 1000,
    xadd_pipelined_records_per_s: Math.round(records / xaddS),
  };
}
