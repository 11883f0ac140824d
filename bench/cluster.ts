/**
 * The pipeline on a real three-primary Redis Cluster (issue 15): the same records, reader bundle
 * and local Lambda runtime as the single-node pipeline phase, in two configurations measured in
 * the same run:
 *
 * - 1 shard, 1 reader (`STREAM_SHARDS=1`): the stream is one key, so one primary holds it;
 * - 3 shards, 2 readers (`STREAM_SHARDS=3`, a second reader task with its own CONSUMER_NAME):
 *   the shards' slots land on different primaries, and each reader reads every shard.
 *
 * Each configuration gets its own STREAM_KEY (so nothing of the first is left to the second)
 * and its own stack (runtime + readers). With the readers stopped (after the first one created
 * the groups), a backlog is XADDed through an ioredis `Cluster` client, each record to the shard
 * the shipper would pick (core/stream/keys.ts `shardOfRecord`), one pipeline per shard at a time.
 * Then every reader is started at once; the clock starts when the last one is ready, and stops
 * when, summed over the shards, the group has read every entry and nothing is pending or lagging.
 * records/s = records acknowledged (or dead-lettered) in that interval / its seconds.
 */
import { join } from "node:path";
import type { Cluster } from "ioredis";
import { sleep } from "../core/lib/time.ts";
import { type StreamNames, shardOfRecord, streamNames } from "../core/stream/keys.ts";
import { shardedStatus } from "../core/stream/status.ts";
import { createCluster } from "../functions/shared/runtime.ts";
import { type RunningCluster, startRedisCluster } from "../local/services.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { CpuMeter, type PhaseOptions, progress, round1 } from "./measure.ts";
import type { RecordMix } from "./records.ts";

export interface ClusterOptions extends PhaseOptions {
  /** VictoriaMetrics (InfluxDB v2 write API) the runtime writes to. */
  vmUrl: string;
  /** Its PID, for CPU accounting. */
  vmPid: () => number | undefined;
  /** Records XADDed per configuration. */
  backlog: number;
  maxDrainS: number;
}

interface ConfigResult {
  shards: number;
  readers: number;
  records: number;
  /** Records per shard, as the producer placed them. */
  recordsByShard: number[];
  /** Records acknowledged (or dead-lettered) between the last reader's start and the end. */
  drained: number;
  /** Records already done when the last reader reported ready (not counted in the rate). */
  doneAtStart: number;
  seconds: number;
  complete: boolean;
  recordsPerS: number;
  cpuCores: Record<string, number>;
  deadLettered: number;
  invalidRecords: number;
  validRecords: number;
  pointsStored: number;
}

export interface ClusterBenchResult {
  cluster_shard1_records_per_s: number;
  cluster_shard3_readers2_records_per_s: number;
  cluster_shard3_vs_shard1: number;
  /** 3 shards, 2 readers: records/s divided by the reader tasks. */
  records_per_s_per_reader_task: number;
  /** 3 shards, 2 readers: records/s divided by the shards. */
  records_per_s_per_shard: number;
  /** Records XADDed per configuration. */
  cluster_backlog_records: number;
  /** CPU µs per record drained, per process (readers and Redis nodes summed). */
  cluster_cpu_us_per_record: {
    shard1: Record<string, number>;
    shard3_readers2: Record<string, number>;
  };
  cluster_drain_s: { shard1: number; shard3_readers2: number };
  /** Every record of both configurations acknowledged or dead-lettered within the time allowed. */
  cluster_complete: boolean;
  cluster_drained_records: { shard1: number; shard3_readers2: number };
  cluster_records_by_shard: { shard1: number[]; shard3_readers2: number[] };
  cluster_dead_lettered: { shard1: number; shard3_readers2: number };
  cluster_invalid_records: { shard1: number; shard3_readers2: number };
  /** Points VictoriaMetrics added to storage during each drain (its rows / 3 fields a point). */
  cluster_points_stored: { shard1: number; shard3_readers2: number };
  cluster_valid_records: { shard1: number; shard3_readers2: number };
  cluster_primaries: number;
}

/** Rows VictoriaMetrics has added to storage since it started (one per field of a point). */
async function vmRowsAdded(vmUrl: string): Promise<number> {
  await fetch(new URL("/internal/force_flush", vmUrl), { method: "POST" });
  const text = await (await fetch(new URL("/metrics", vmUrl))).text();
  const m = /^vm_rows_added_to_storage_total (\d+)/m.exec(text);
  return Number(m?.[1] ?? Number.NaN);
}

/** Fields of every point (core/metrics/point.ts: anomaly_score, severity, response_code). */
const FIELDS_PER_POINT = 3;

/**
 * XADDs records `from`..`from+count-1`, each to the shard the shipper would pick; `chunk` records
 * at a time, one pipeline per shard (a cluster pipeline must stay in one slot), all in flight.
 */
async function xaddSharded(
  redis: Cluster,
  names: StreamNames,
  mix: RecordMix,
  from: number,
  count: number,
  chunk = 2000,
): Promise<number[]> {
  const { shards } = names;
  const perShard = shards.map(() => 0);
  for (let start = from; start < from + count; start += chunk) {
    const end = Math.min(from + count, start + chunk);
    const pipelines = shards.map(() => redis.pipeline());
    const inChunk = shards.map(() => 0);
    for (let n = start; n < end; n++) {
      const text = mix.text(n);
      // As the shipper's producer does (core/ship/producer.ts `keyFor`).
      const i = shardOfRecord(text, shards.length);
      const shard = shards[i] ?? shards[0];
      if (!shard) throw new Error("no stream shard");
      inChunk[shard.index] = (inChunk[shard.index] ?? 0) + 1;
      pipelines[shard.index]?.xadd(shard.stream, "*", names.field, text);
    }
    const results = await Promise.all(
      pipelines.map((p, i) => ((inChunk[i] ?? 0) > 0 ? p.exec() : Promise.resolve([]))),
    );
    for (const res of results) for (const [err] of res ?? []) if (err) throw err;
    inChunk.forEach((k, i) => {
      perShard[i] = (perShard[i] ?? 0) + k;
    });
  }
  return perShard;
}

interface Totals {
  entriesRead: number;
  pending: number;
  lag: number | undefined;
  dlq: number;
}

async function totals(redis: Cluster, names: StreamNames): Promise<Totals> {
  const s = await shardedStatus(redis, names);
  return { entriesRead: s.entriesRead, pending: s.pending, lag: s.lag, dlq: s.dlqLength };
}

/**
 * Waits until, summed over every shard, the group has read `entriesRead` entries and nothing is
 * pending or lagging, or `maxS` passed since `started`. `done`: entries acknowledged (or
 * dead-lettered) since `baseDone` was.
 */
async function drainAll(
  redis: Cluster,
  names: StreamNames,
  target: { entriesRead: number; baseDone: number },
  maxS: number,
  started: number,
): Promise<{ done: number; seconds: number; complete: boolean }> {
  let lastReport = started;
  for (;;) {
    const t = await totals(redis, names);
    const done = t.entriesRead - t.pending - target.baseDone;
    const seconds = (performance.now() - started) / 1000;
    if (t.entriesRead >= target.entriesRead && t.pending + (t.lag ?? 0) === 0) {
      return { done, seconds, complete: true };
    }
    if (seconds >= maxS) return { done, seconds, complete: false };
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      progress(`  … ${done} acknowledged (${Math.round(done / seconds)}/s)`);
    }
    await sleep(50);
  }
}

async function runConfig(
  o: ClusterOptions,
  cluster: RunningCluster,
  redis: Cluster,
  c: { shards: number; readers: number; from: number; tag: string },
): Promise<ConfigResult> {
  const streamKey = `bench-cluster-${c.tag}`;
  const names = streamNames(
    {
      STREAM_KEY: streamKey,
      CONSUMER_GROUP: "realtime-processor",
      STREAM_FIELD: "event",
      DLQ_STREAM_KEY: `${streamKey}:dlq`,
    },
    { cluster: true, shards: c.shards },
  );
  progress(
    `cluster ${c.tag}: starting the stack (STREAM_SHARDS=${c.shards}, ${c.readers} reader${c.readers > 1 ? "s" : ""}; shards ${names.shards.map((s) => s.stream).join(", ")})`,
  );
  const stack: Stack = await startStack({
    redisUrl: cluster.url,
    influxUrl: o.vmUrl,
    readerBundle: true,
    logDir: join(o.logDir, `cluster-${c.tag}`),
    env: {
      ...o.env,
      STREAM_KEY: streamKey,
      DLQ_STREAM_KEY: `${streamKey}:dlq`,
      STREAM_SHARDS: String(c.shards),
      BATCH_SIZE: String(o.batchSize),
      BATCH_WINDOW_MS: String(o.batchWindowMs),
      MAX_IN_FLIGHT: String(o.maxInFlight),
      CONSUMER_NAME: "bench-reader-1",
      LOG_LEVEL: "info",
    },
  });
  try {
    // The first start created the group on every shard; the backlog is written with it stopped.
    await stack.stopReader();
    progress(
      `cluster ${c.tag}: XADD ${o.backlog} records to ${c.shards} shard(s), readers stopped`,
    );
    const t0 = performance.now();
    const recordsByShard = await xaddSharded(redis, names, o.mix, c.from, o.backlog);
    progress(
      `cluster ${c.tag}: written in ${((performance.now() - t0) / 1000).toFixed(1)} s (per shard: ${recordsByShard.join(", ")})`,
    );
    const before = await totals(redis, names);
    const rowsBefore = await vmRowsAdded(o.vmUrl);

    const extra: Array<{ process: { pid?: number } }> = [];
    await Promise.all([
      stack.startReader(),
      ...Array.from({ length: c.readers - 1 }, async (_, i) => {
        extra.push(
          await stack.addReader(`reader-${i + 2}`, { CONSUMER_NAME: `bench-reader-${i + 2}` }),
        );
      }),
    ]);
    const started = performance.now();
    const meter = new CpuMeter(() => ({
      reader_1: stack.reader().pid,
      ...Object.fromEntries(extra.map((r, i) => [`reader_${i + 2}`, r.process.pid])),
      runtime: stack.runtime().pid,
      ...Object.fromEntries(cluster.nodes.map((n, i) => [`redis_${i + 1}`, n.pid])),
      victoria_metrics: o.vmPid(),
      bench: process.pid,
    }));
    meter.start();
    const atStart = await totals(redis, names);
    const baseDone = atStart.entriesRead - atStart.pending;
    const doneAtStart = baseDone - (before.entriesRead - before.pending);
    progress(`cluster ${c.tag}: readers started (${doneAtStart} records done by then), draining`);
    const d = await drainAll(
      redis,
      names,
      { entriesRead: before.entriesRead + o.backlog, baseDone },
      o.maxDrainS,
      started,
    );
    const cores = meter.stop();
    const after = await totals(redis, names);
    const pointsStored = Math.round(((await vmRowsAdded(o.vmUrl)) - rowsBefore) / FIELDS_PER_POINT);
    let invalidRecords = 0;
    for (let n = c.from; n < c.from + o.backlog; n++) if (o.mix.invalid(n)) invalidRecords++;
    const drained = d.done;
    const recordsPerS = drained / Math.max(0.001, d.seconds);
    // Readers and Redis nodes summed; every process kept too.
    const sum = (prefix: string) =>
      round2(
        Object.entries(cores)
          .filter(([k]) => k.startsWith(prefix))
          .reduce((n, [, v]) => n + v, 0),
      );
    const cpuCores = { readers: sum("reader_"), redis: sum("redis_"), ...cores };
    const result: ConfigResult = {
      shards: c.shards,
      readers: c.readers,
      records: o.backlog,
      recordsByShard,
      drained,
      doneAtStart,
      seconds: d.seconds,
      complete: d.complete,
      recordsPerS,
      cpuCores,
      deadLettered: after.dlq - before.dlq,
      invalidRecords,
      validRecords: o.backlog - invalidRecords,
      pointsStored,
    };
    progress(
      `cluster ${c.tag}: ${drained} records in ${d.seconds.toFixed(1)} s = ${Math.round(recordsPerS)}/s${d.complete ? "" : " (INCOMPLETE)"}; ` +
        `${pointsStored} points stored of ${result.validRecords} valid, ${result.deadLettered} dead-lettered of ${invalidRecords} invalid; cores ${JSON.stringify(cpuCores)}`,
    );
    return result;
  } finally {
    await stack.stop();
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function usPerRecord(r: ConfigResult): Record<string, number> {
  return Object.fromEntries(
    Object.entries(r.cpuCores).map(([k, cores]) => [
      k,
      Math.round((cores * r.seconds * 1e6) / Math.max(1, r.drained)),
    ]),
  );
}

/** Both configurations on one throwaway three-primary cluster; everything stopped afterwards. */
export async function measureCluster(o: ClusterOptions): Promise<ClusterBenchResult> {
  progress("cluster: starting a 3-primary Redis Cluster");
  const cluster = await startRedisCluster({ primaries: 3 });
  const redis = createCluster(cluster.url);
  try {
    const one = await runConfig(o, cluster, redis, {
      shards: 1,
      readers: 1,
      from: o.firstIndex,
      tag: "shard1",
    });
    const three = await runConfig(o, cluster, redis, {
      shards: 3,
      readers: 2,
      from: o.firstIndex + o.backlog,
      tag: "shard3-readers2",
    });
    const pair = <T>(f: (r: ConfigResult) => T) => ({ shard1: f(one), shard3_readers2: f(three) });
    return {
      cluster_shard1_records_per_s: Math.round(one.recordsPerS),
      cluster_shard3_readers2_records_per_s: Math.round(three.recordsPerS),
      cluster_shard3_vs_shard1: Math.round((three.recordsPerS / one.recordsPerS) * 1000) / 1000,
      records_per_s_per_reader_task: Math.round(three.recordsPerS / three.readers),
      records_per_s_per_shard: Math.round(three.recordsPerS / three.shards),
      cluster_backlog_records: o.backlog,
      cluster_cpu_us_per_record: pair(usPerRecord),
      cluster_drain_s: pair((r) => round1(r.seconds)),
      cluster_complete: one.complete && three.complete,
      cluster_drained_records: pair((r) => r.doneAtStart + r.drained),
      cluster_records_by_shard: pair((r) => r.recordsByShard),
      cluster_dead_lettered: pair((r) => r.deadLettered),
      cluster_invalid_records: pair((r) => r.invalidRecords),
      cluster_points_stored: pair((r) => r.pointsStored),
      cluster_valid_records: pair((r) => r.validRecords),
      cluster_primaries: cluster.nodes.length,
    };
  } finally {
    redis.disconnect();
    await cluster.stop();
  }
}
