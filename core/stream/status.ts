/**
 * What an operator (and the reader's gauges, `waf status`, the live view and `npm start`'s
 * summary) needs to know about the stream: length, consumer-group lag and pending entries,
 * consumers, DLQ length — and, for `waf status`, when entries last arrived and the newest
 * dead-letter. Redis's reply shapes are read here and nowhere above.
 */

import { fieldMap } from "../lib/fields.ts";
import type { RedisClient } from "../lib/redis.ts";
import { DLQ_FIELDS, dlqEntry, streamIdMs } from "./entry.ts";
import type { StreamNames, StreamShard } from "./keys.ts";
import { type ConsumerInfo, consumerInfo, entriesOf } from "./redis-stream.ts";

export interface StreamStatus {
  /** Entries in the stream (XLEN); 0 when it does not exist. */
  length: number;
  /** Whether the consumer group exists. */
  groupExists: boolean;
  /** Entries the group has not read yet; undefined when Redis cannot tell (after trimming). */
  lag: number | undefined;
  /** Entries delivered but not acknowledged. */
  pending: number;
  /** Entries the group has read (delivered at least once). */
  entriesRead: number;
  /** Consumers of the group with their pending counts and idle times (when asked for). */
  consumers: ConsumerInfo[];
  /** Dead-letter stream length. */
  dlqLength: number;
}

/** Reads the status with a handful of commands in one round trip. */
export async function streamStatus(
  redis: RedisClient,
  names: Pick<StreamNames, "stream" | "group" | "dlq">,
  opts: { withConsumers?: boolean } = {},
): Promise<StreamStatus> {
  const p = redis.pipeline();
  p.xlen(names.stream);
  p.xinfo("GROUPS", names.stream);
  p.xlen(names.dlq);
  if (opts.withConsumers) p.xinfo("CONSUMERS", names.stream, names.group);
  const res = (await p.exec()) ?? [];
  const [lenRes, groupsRes, dlqRes, consumersRes] = res;
  if (lenRes?.[0]) throw lenRes[0];
  if (dlqRes?.[0]) throw dlqRes[0];
  const length = Number(lenRes?.[1] ?? 0);
  const dlqLength = Number(dlqRes?.[1] ?? 0);
  // XINFO on a missing stream is an error ("no such key"): a stream nobody wrote to yet.
  const groups = groupsRes?.[0] ? [] : ((groupsRes?.[1] as unknown[][]) ?? []);
  const g = groups.map((row) => fieldMap(row)).find((x) => x.name === names.group);
  const consumers =
    consumersRes && !consumersRes[0]
      ? ((consumersRes[1] as unknown[]) ?? []).map(consumerInfo)
      : [];
  if (!g) {
    return {
      length,
      groupExists: false,
      lag: length,
      pending: 0,
      entriesRead: 0,
      consumers,
      dlqLength,
    };
  }
  return {
    length,
    groupExists: true,
    lag: g.lag === null || g.lag === undefined ? undefined : Number(g.lag),
    pending: Number(g.pending ?? 0),
    entriesRead: Number(g["entries-read"] ?? 0),
    consumers,
    dlqLength,
  };
}

/** One shard's status, and where it lives. */
export type ShardStatus = StreamStatus & StreamShard;

/** The status over every shard: totals (the logical stream), and each shard's own. */
export interface ShardedStatus extends StreamStatus {
  shards: ShardStatus[];
}

/** The status of every shard (one round trip each, in parallel) and their totals. */
export async function shardedStatus(
  redis: RedisClient,
  names: StreamNames,
  opts: { withConsumers?: boolean } = {},
): Promise<ShardedStatus> {
  const shards = await Promise.all(
    names.shards.map(async (shard) => ({
      ...(await streamStatus(redis, { ...shard, group: names.group }, opts)),
      ...shard,
    })),
  );
  const sum = (f: (s: StreamStatus) => number) => shards.reduce((n, s) => n + f(s), 0);
  const consumers = new Map<string, ConsumerInfo>();
  for (const c of shards.flatMap((s) => s.consumers)) {
    const seen = consumers.get(c.name);
    consumers.set(
      c.name,
      seen
        ? {
            name: c.name,
            pending: seen.pending + c.pending,
            idleMs: Math.min(seen.idleMs, c.idleMs),
          }
        : { ...c },
    );
  }
  const lags = shards.map((s) => s.lag);
  return {
    length: sum((s) => s.length),
    groupExists: shards.every((s) => s.groupExists),
    lag: lags.every((l) => l !== undefined) ? lags.reduce((n, l) => n + (l ?? 0), 0) : undefined,
    pending: sum((s) => s.pending),
    entriesRead: sum((s) => s.entriesRead),
    consumers: [...consumers.values()],
    dlqLength: sum((s) => s.dlqLength),
    shards,
  };
}

export interface StreamActivity {
  /** Redis server time, ms. */
  serverTimeMs: number;
  /** XINFO STREAM entries-added (Redis 7+); undefined before, or with no stream. */
  entriesAdded: number | undefined;
  /** Time of the newest entry ever added (from last-generated-id), ms. */
  lastAddedMs: number | undefined;
  /** The newest dead-letter's time (ISO) and reason. */
  newestDlq: { at: string; reason: string } | undefined;
  redisVersion: string | undefined;
}

/** When entries last arrived, how many ever did, the newest dead-letter; one round trip. */
export async function streamActivity(
  redis: RedisClient,
  names: Pick<StreamNames, "stream" | "dlq">,
): Promise<StreamActivity> {
  const p = redis.pipeline();
  p.time();
  p.xinfo("STREAM", names.stream);
  p.xrevrange(names.dlq, "+", "-", "COUNT", 1);
  p.info("server");
  const [time, info, dlqHead, server] = (await p.exec()) ?? [];
  if (time?.[0]) throw time[0];
  const [sec, usec] = (time?.[1] as [string, string]) ?? ["0", "0"];
  const xinfo = info?.[0] ? {} : fieldMap(info?.[1] as unknown[]);
  const added = xinfo["entries-added"];
  const lastId = xinfo["last-generated-id"];
  const [newest] = dlqHead?.[0] ? [] : entriesOf(dlqHead?.[1]);
  const f = newest ? dlqEntry(newest).fields : undefined;
  return {
    serverTimeMs: Number(sec) * 1000 + Math.floor(Number(usec) / 1000),
    entriesAdded: added === undefined || added === null ? undefined : Number(added),
    lastAddedMs: typeof lastId === "string" && lastId !== "0-0" ? streamIdMs(lastId) : undefined,
    newestDlq: f
      ? { at: f[DLQ_FIELDS.failedAt] ?? "", reason: f[DLQ_FIELDS.reason] ?? "" }
      : undefined,
    redisVersion: server?.[0]
      ? undefined
      : /redis_version:([^\r\n]+)/.exec(String(server?.[1] ?? ""))?.[1],
  };
}
