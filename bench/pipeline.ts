/**
 * The pipeline end to end, as `npm start` runs it: records on the Redis Stream → the reader's
 * production bundle → the local Lambda Invoke API (real `@aws-sdk/client-lambda`) → the scoring
 * handler → VictoriaMetrics, alerts → the alert handler → the Redis list.
 *
 * Phases, on one stack:
 * 1. throughput: a backlog XADDed while the reader is stopped, then drained; records/s from the
 *    reader's start until every entry is acknowledged (or dead-lettered);
 * 2. invocation durations, for the cost model: sequential invocations of the scorer (full batches
 *    and single records) and of the alert function, one at a time as separate Lambda sandboxes
 *    would run them;
 * 3. latency at a fixed offered rate: the runtime writes through a recording proxy (tap.ts);
 *    XADD time is the stream entry ID's own (Redis) clock, point accepted is when
 *    VictoriaMetrics answered 2xx for the request carrying the point, alert listed is when the
 *    bench first saw the alert at the head of the list (polled every few ms);
 * 4. a large backlog (1,000,000 entries in the full run), drained for a bounded time while the
 *    reader's memory is sampled.
 */

import { readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";
import { Redis } from "ioredis";
import { sleep } from "../core/lib/time.ts";
import { pointTimeNs } from "../core/metrics/point.ts";
import { scoreRecord } from "../core/scorer.ts";
import { streamStatus } from "../core/stream/status.ts";
import { createLambdaClient } from "../functions/shared/lambda.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { benchSettings } from "./core.ts";
import {
  CpuMeter,
  type PhaseOptions,
  percentile,
  progress,
  RssSampler,
  round1,
} from "./measure.ts";
import type { RecordMix } from "./records.ts";
import { xaddMix } from "./redis-ceiling.ts";
import { nowMs, type Tap } from "./tap.ts";

const STREAM = "waf-realtime";
const DLQ = "waf-realtime:dlq";
const ALERTS = "waf-alerts";
const GROUP = "realtime-processor";

export interface PipelineOptions extends PhaseOptions {
  redisUrl: string;
  vmUrl: string;
  tap: Tap;
  /** PIDs of Redis and VictoriaMetrics, for CPU accounting. */
  servicePids: () => Record<string, number | undefined>;
  backlog: number;
  maxDrainS: number;
  costBatches: number;
  costSingles: number;
  latencySeconds: number;
  /** Seconds of the same load offered before measuring latency (the runtime was just restarted). */
  warmupSeconds: number;
  /** Records/s offered during the latency phase; computed from the throughput when undefined. */
  offeredRate?: number;
  offeredFraction: number;
  bigBacklog: number;
  bigBacklogMaxDrainS: number;
}

export interface InvocationSample {
  /** Handler time (BatchLatencyMs of the scorer's EMF line), ms. */
  handlerMs: number;
  /** Records in the batch. */
  records: number;
  alerts: number;
}

export interface PipelineResult {
  throughput: {
    records: number;
    seconds: number;
    recordsPerS: number;
    pointsStored: number;
    validRecords: number;
    deadLettered: number;
    invalidRecords: number;
    readerPeakRssMb: number;
    cpuCores: Record<string, number>;
    loadavg: number;
    /** Every scorer invocation of the phase, as the handler timed it (contended). */
    invocations: InvocationSample[];
  };
  cost: {
    batched: InvocationSample[];
    singles: InvocationSample[];
    /** JSON.parse of one full batch's request body, ms (the runtime's work before the handler). */
    batchBodyParseMs: number;
    alerterBatchMs: number[];
    alerterSingleMs: number[];
    alertsPerBatch: number;
  };
  latency: {
    offeredRate: number;
    seconds: number;
    records: number;
    pointsMs: number[];
    pointsMissing: number;
    alertsMs: number[];
    alertsExpected: number;
    readerPeakRssMb: number;
    cpuCores: Record<string, number>;
    loadavg: number;
  };
  backlog: {
    records: number;
    xaddS: number;
    drainedRecords: number;
    drainS: number;
    complete: boolean;
    readerPeakRssMb: number;
    redisUsedMemoryMb: number;
    cpuCores: Record<string, number>;
  };
  readerIdleRssMb: number;
}

export interface GroupInfo {
  entriesRead: number;
  pending: number;
  lag: number | null;
}

export async function groupInfo(redis: Redis): Promise<GroupInfo> {
  const s = await streamStatus(redis, { stream: STREAM, group: GROUP, dlq: DLQ });
  return {
    entriesRead: s.entriesRead,
    pending: s.pending,
    lag: s.groupExists ? (s.lag ?? null) : null,
  };
}

/**
 * Waits until the `count` entries added after `before` was taken were read by the group and none
 * is pending, or `maxS` passed. `done` counts those of them acknowledged (or dead-lettered).
 */
export async function drain(
  redis: Redis,
  before: GroupInfo,
  count: number,
  maxS: number,
  everyMs = 50,
): Promise<{ done: number; seconds: number; complete: boolean }> {
  const started = performance.now();
  const baseDone = before.entriesRead - before.pending;
  let lastReport = started;
  for (;;) {
    const g = await groupInfo(redis);
    const done = g.entriesRead - g.pending - baseDone;
    const seconds = (performance.now() - started) / 1000;
    if (g.entriesRead >= before.entriesRead + count && g.pending === 0) {
      return { done, seconds, complete: true };
    }
    if (seconds >= maxS) return { done, seconds, complete: false };
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      progress(`  … ${done} of ${count} acknowledged (${Math.round(done / seconds)}/s)`);
    }
    await sleep(everyMs);
  }
}

/** The scorer's EMF lines in the runtime's log written since `offset`. */
function scorerInvocations(logFile: string, offset: number): InvocationSample[] {
  const text = readFileSync(logFile, "utf8").slice(offset);
  const out: InvocationSample[] = [];
  const num = (line: string, name: string) =>
    Number(new RegExp(`"${name}":(\\d+(?:\\.\\d+)?)`).exec(line)?.[1] ?? 0);
  for (const line of text.split("\n")) {
    if (!line.includes('"BatchLatencyMs"') || !line.includes('"_aws"')) continue;
    out.push({
      handlerMs: num(line, "BatchLatencyMs"),
      records:
        num(line, "EventsProcessed") + num(line, "EventsRejected") + num(line, "EventsFailed"),
      alerts: num(line, "AlertsQueued"),
    });
  }
  return out;
}

function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Samples stored in VictoriaMetrics for the severity field (one per point). */
async function storedPoints(vmUrl: string): Promise<number> {
  await fetch(new URL("/internal/force_flush", vmUrl), { method: "POST" });
  const url = new URL("/api/v1/export", vmUrl);
  url.searchParams.set("match[]", "waf_events_severity");
  const body = await (await fetch(url)).text();
  let n = 0;
  for (const line of body.split("\n")) {
    if (line.trim() === "") continue;
    n += (JSON.parse(line) as { values: unknown[] }).values.length;
  }
  return n;
}

function invalidCount(mix: RecordMix, from: number, count: number): number {
  let n = 0;
  for (let i = from; i < from + count; i++) if (mix.invalid(i)) n++;
  return n;
}

/** Polls the alert list's head for new tx_ids and notes when each was first seen. */
function startAlertWatcher(redis: Redis, prefix: string) {
  const seen = new Map<string, number>();
  let head: string | undefined;
  let stopped = false;
  const txOf = (entry: string) => /"tx_id":"((?:[^"\\]|\\.)*)"/.exec(entry)?.[1];
  const loop = async () => {
    let window = 64;
    while (!stopped) {
      const entries = await redis.lrange(ALERTS, 0, window - 1);
      const at = nowMs();
      const fresh: string[] = [];
      let reachedOld = head === undefined && entries.length < window;
      for (const e of entries) {
        const tx = txOf(e);
        if (tx === undefined) continue;
        if (tx === head) {
          reachedOld = true;
          break;
        }
        fresh.push(tx);
      }
      if (!reachedOld && entries.length === window && head !== undefined) {
        window *= 2; // more arrived than the window holds: look further right away
        continue;
      }
      if (fresh.length > 0) head = fresh[0];
      for (const tx of fresh) if (tx.startsWith(prefix) && !seen.has(tx)) seen.set(tx, at);
      window = 64;
      await sleep(3);
    }
  };
  const done = loop();
  return {
    seen,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

/** XADDs records from `from` at `rate` per second for `seconds`; returns their entry IDs. */
async function offer(
  producer: Redis,
  mix: RecordMix,
  from: number,
  rate: number,
  seconds: number,
): Promise<string[]> {
  const ids: string[] = [];
  const started = nowMs();
  const total = Math.floor(rate * seconds);
  while (ids.length < total) {
    const due = Math.min(total, Math.floor(((nowMs() - started) / 1000) * rate));
    if (due > ids.length) {
      const p = producer.pipeline();
      for (let i = ids.length; i < due; i++) p.xadd(STREAM, "*", "event", mix.text(from + i));
      for (const [err, id] of (await p.exec()) ?? []) {
        if (err) throw err;
        ids.push(id as string);
      }
    }
    await sleep(2);
  }
  return ids;
}

function lambdaClient(endpoint: string, token: string | undefined): LambdaClient {
  return createLambdaClient(
    {
      endpoint,
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
      maxAttempts: 1,
    },
    token,
  );
}

const encoder = new TextEncoder();

async function invoke(client: LambdaClient, fn: string, body: string): Promise<number> {
  const started = performance.now();
  const res = await client.send(
    new InvokeCommand({
      FunctionName: fn,
      InvocationType: "RequestResponse",
      Payload: encoder.encode(body),
    }),
  );
  const ms = performance.now() - started;
  if (res.FunctionError) {
    throw new Error(`${fn} failed: ${new TextDecoder().decode(res.Payload ?? new Uint8Array())}`);
  }
  return ms;
}

export async function runPipeline(o: PipelineOptions): Promise<PipelineResult> {
  const redis = new Redis(o.redisUrl);
  const producer = new Redis(o.redisUrl);
  const watcherConn = new Redis(o.redisUrl);
  let next = o.firstIndex;
  const take = (n: number) => {
    const from = next;
    next += n;
    return from;
  };

  progress(
    `starting the stack (reader bundle, local Lambda runtime; BATCH_SIZE=${o.batchSize}, BATCH_WINDOW_MS=${o.batchWindowMs}, MAX_IN_FLIGHT=${o.maxInFlight})`,
  );
  const stack: Stack = await startStack({
    redisUrl: o.redisUrl,
    influxUrl: o.vmUrl,
    readerBundle: true,
    logDir: o.logDir,
    env: {
      ...o.env,
      BATCH_SIZE: String(o.batchSize),
      BATCH_WINDOW_MS: String(o.batchWindowMs),
      MAX_IN_FLIGHT: String(o.maxInFlight),
      CONSUMER_NAME: "bench-reader",
      LOG_LEVEL: "info",
    },
  });
  const runtimeLog = join(o.logDir, "runtime.log");
  const services = (extra: Record<string, number | undefined>) =>
    new CpuMeter(() => ({
      reader: stack.reader().pid,
      runtime: stack.runtime().pid,
      bench: process.pid,
      ...extra,
    }));
  const servicePids = o.servicePids();

  try {
    await sleep(500);
    const idle = new RssSampler(stack.reader().pid as number);
    const readerIdleRssMb = idle.stop().lastMb;

    // 1. Throughput over a backlog.
    await stack.stopReader();
    const tFrom = take(o.backlog);
    progress(`throughput: XADD ${o.backlog} records while the reader is stopped`);
    await xaddMix(producer, STREAM, o.mix, tFrom, o.backlog);
    const before = await groupInfo(redis);
    const dlqBefore = await redis.xlen(DLQ);
    const logOffset = logSize(runtimeLog);
    await stack.startReader();
    const meter1 = services(servicePids);
    meter1.start();
    const rss1 = new RssSampler(stack.reader().pid as number);
    progress("throughput: reader started, draining");
    const d1 = await drain(redis, before, o.backlog, o.maxDrainS);
    const rssT = rss1.stop();
    const loadT = os.loadavg()[0] ?? 0;
    const cpu1 = meter1.stop();
    await sleep(300);
    const invocations = scorerInvocations(runtimeLog, logOffset);
    const invalid = invalidCount(o.mix, tFrom, o.backlog);
    const deadLettered = (await redis.xlen(DLQ)) - dlqBefore;
    const pointsStored = await storedPoints(o.vmUrl);
    const recordsPerS = d1.done / d1.seconds;
    progress(
      `throughput: ${d1.done} records in ${d1.seconds.toFixed(1)} s = ${Math.round(recordsPerS)}/s; ` +
        `${pointsStored} points stored, ${deadLettered} dead-lettered; reader peak RSS ${round1(rssT.peakMb)} MB`,
    );

    // 2. Invocation durations, one at a time (as separate Lambda sandboxes would run them).
    progress(
      `cost: ${o.costBatches} batches of ${o.batchSize} and ${o.costSingles} single records, one at a time`,
    );
    const client = lambdaClient(stack.lambdaUrl, stack.env.LOCAL_LAMBDA_TOKEN);
    const fn = stack.env.SCORER_FUNCTION ?? "waf-scorer";
    const alertFn = stack.env.ALERT_FUNCTION ?? "waf-alerter";
    const body = (from: number, count: number) => {
      const base = Date.now();
      const records = [];
      for (let i = 0; i < count; i++) {
        records.push({ id: `${base}-${from + i}`, data: o.mix.text(from + i), deliveryCount: 1 });
      }
      return JSON.stringify({ records });
    };
    // Warm the handler's paths first (a cold start is not what is measured).
    for (let i = 0; i < 3; i++) await invoke(client, fn, body(take(o.batchSize), o.batchSize));
    let off = logSize(runtimeLog);
    const batchBodies: string[] = [];
    for (let i = 0; i < o.costBatches; i++) {
      const b = body(take(o.batchSize), o.batchSize);
      batchBodies.push(b);
      await invoke(client, fn, b);
      await sleep(15); // let the asynchronous alert invocation run outside the next measurement
    }
    await sleep(200);
    const batched = scorerInvocations(runtimeLog, off);
    off = logSize(runtimeLog);
    for (let i = 0; i < o.costSingles; i++) {
      await invoke(client, fn, body(take(1), 1));
      await sleep(2);
    }
    await sleep(200);
    const singles = scorerInvocations(runtimeLog, off);
    const parseTimes = batchBodies.map((b) => {
      const t = performance.now();
      JSON.parse(b);
      return performance.now() - t;
    });
    const batchBodyParseMs = parseTimes.reduce((a, b) => a + b, 0) / Math.max(1, parseTimes.length);
    const alertsPerBatch = Math.max(
      1,
      Math.round(
        invocations.reduce((n, s) => n + s.alerts, 0) /
          Math.max(1, invocations.filter((s) => s.alerts > 0).length),
      ),
    );
    const alert = (i: number) => ({
      timestamp: Math.floor(Date.now() / 1000),
      severity: 95,
      severity_level: "critical",
      client_ip: "203.0.113.9",
      rule_id: "942100",
      categories: ["sqli"],
      uri: "/login?user=admin%27--",
      method: "POST",
      tx_id: `bench-cost-alert-${Date.now()}-${i}`,
      anomaly_score: 65,
    });
    const alerterBatchMs: number[] = [];
    const alerterSingleMs: number[] = [];
    let a = 0;
    for (let i = 0; i < Math.max(5, Math.ceil(o.costBatches / 2)); i++) {
      const alerts = Array.from({ length: alertsPerBatch }, () => alert(a++));
      alerterBatchMs.push(await invoke(client, alertFn, JSON.stringify({ alerts })));
      alerterSingleMs.push(await invoke(client, alertFn, JSON.stringify({ alerts: [alert(a++)] })));
    }
    client.destroy();

    // 3. Latency at a fixed offered rate, through the recording proxy.
    const offeredRate = Math.max(1, Math.round(o.offeredRate ?? recordsPerS * o.offeredFraction));
    progress(`latency: restarting the runtime to write through the recording proxy`);
    await stack.stopReader();
    stack.env.INFLUXDB_URL = o.tap.url;
    await stack.stopRuntime();
    await stack.startRuntime();
    await stack.startReader();
    await sleep(500);
    // Warm the restarted processes (JIT, connections) at the same rate before measuring.
    await offer(
      producer,
      o.mix,
      take(Math.ceil(offeredRate * o.warmupSeconds)),
      offeredRate,
      o.warmupSeconds,
    );
    const lFrom = take(Math.ceil(offeredRate * o.latencySeconds) + 10);
    const prefix = `${o.mix.txId(lFrom)?.replace(/-\d+$/, "")}-`;
    const watcher = startAlertWatcher(watcherConn, prefix);
    o.tap.arm();
    const meter2 = services(servicePids);
    meter2.start();
    const rss2 = new RssSampler(stack.reader().pid as number);
    const beforeL = await groupInfo(redis);
    progress(`latency: offering ${offeredRate} records/s for ${o.latencySeconds} s`);
    const started = nowMs();
    const ids = await offer(producer, o.mix, lFrom, offeredRate, o.latencySeconds);
    const offeredS = (nowMs() - started) / 1000;
    await drain(redis, beforeL, ids.length, 30);
    const deadline = performance.now() + 5_000;
    await sleep(300);
    while (performance.now() < deadline) {
      const before = watcher.seen.size;
      await sleep(300);
      if (watcher.seen.size === before) break;
    }
    await watcher.stop();
    o.tap.disarm();
    const rssL = rss2.stop();
    const loadL = os.loadavg()[0] ?? 0;
    const cpu2 = meter2.stop();
    const pointsMs: number[] = [];
    let pointsMissing = 0;
    let alertsExpected = 0;
    const settings = benchSettings();
    const alertsMs: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as string;
      const xaddAt = Number(id.slice(0, id.indexOf("-")));
      const scored = scoreRecord(o.mix.text(lFrom + i), settings);
      if (!scored.ok) continue;
      const accepted = o.tap.accepted.get(String(pointTimeNs(scored.event, id)));
      if (accepted === undefined) pointsMissing++;
      else pointsMs.push(accepted - xaddAt);
      if (!scored.score.alert) continue;
      alertsExpected++;
      const listed = watcher.seen.get(scored.event.txId);
      if (listed !== undefined) alertsMs.push(listed - xaddAt);
    }
    if (process.env.BENCH_DEBUG_DIR) {
      const rows = ids.map((id, i) => {
        const scored = scoreRecord(o.mix.text(lFrom + i), settings);
        if (!scored.ok) return "";
        const at = o.tap.accepted.get(String(pointTimeNs(scored.event, id)));
        return `${id.slice(0, id.indexOf("-"))},${at === undefined ? "" : (at - Number(id.slice(0, id.indexOf("-")))).toFixed(1)}`;
      });
      writeFileSync(join(process.env.BENCH_DEBUG_DIR, "latency.csv"), `${rows.join("\n")}\n`);
    }
    progress(
      `latency: ${ids.length} records in ${offeredS.toFixed(1)} s; XADD→point p50 ${round1(percentile(pointsMs, 50))} ms, ` +
        `p99 ${round1(percentile(pointsMs, 99))} ms (${pointsMissing} unmatched); XADD→alert p99 ${round1(percentile(alertsMs, 99))} ms (${alertsMs.length} of ${alertsExpected} alerts seen)`,
    );

    // 4. A large backlog: is the reader's memory bounded?
    progress(`backlog: restarting the runtime without the proxy; XADD ${o.bigBacklog} records`);
    await stack.stopReader();
    stack.env.INFLUXDB_URL = o.vmUrl;
    await stack.stopRuntime();
    await stack.startRuntime();
    // Entries already acknowledged are of no further use; the producer trims, never the reader.
    await redis.xtrim(STREAM, "MAXLEN", 0);
    const bFrom = take(o.bigBacklog);
    const tx0 = performance.now();
    await xaddMix(producer, STREAM, o.mix, bFrom, o.bigBacklog, { chunk: 2000 });
    const xaddS = (performance.now() - tx0) / 1000;
    const mem = await redis.info("memory");
    const redisUsedMemoryMb = Number(/used_memory:(\d+)/.exec(mem)?.[1] ?? 0) / 2 ** 20;
    const beforeB = await groupInfo(redis);
    progress(
      `backlog: ${o.bigBacklog} entries written in ${xaddS.toFixed(1)} s (Redis holds ${Math.round(redisUsedMemoryMb)} MB); draining for at most ${o.bigBacklogMaxDrainS} s`,
    );
    await stack.startReader();
    const meter3 = services(servicePids);
    meter3.start();
    const rss3 = new RssSampler(stack.reader().pid as number, 200);
    const d3 = await drain(redis, beforeB, o.bigBacklog, o.bigBacklogMaxDrainS, 250);
    const rssB = rss3.stop();
    const cpu3 = meter3.stop();
    const drained = d3.done;
    progress(
      `backlog: ${drained} of ${o.bigBacklog} acknowledged in ${d3.seconds.toFixed(1)} s (${Math.round(drained / d3.seconds)}/s); reader peak RSS ${round1(rssB.peakMb)} MB`,
    );

    return {
      throughput: {
        records: d1.done,
        seconds: d1.seconds,
        recordsPerS,
        pointsStored,
        validRecords: o.backlog - invalid,
        deadLettered,
        invalidRecords: invalid,
        readerPeakRssMb: rssT.peakMb,
        cpuCores: cpu1,
        loadavg: loadT,
        invocations,
      },
      cost: {
        batched,
        singles,
        batchBodyParseMs,
        alerterBatchMs,
        alerterSingleMs,
        alertsPerBatch,
      },
      latency: {
        offeredRate,
        seconds: offeredS,
        records: ids.length,
        pointsMs,
        pointsMissing,
        alertsMs,
        alertsExpected,
        readerPeakRssMb: rssL.peakMb,
        cpuCores: cpu2,
        loadavg: loadL,
      },
      backlog: {
        records: o.bigBacklog,
        xaddS,
        drainedRecords: drained,
        drainS: d3.seconds,
        complete: d3.complete,
        readerPeakRssMb: rssB.peakMb,
        redisUsedMemoryMb,
        cpuCores: cpu3,
      },
      readerIdleRssMb,
    };
  } finally {
    progress("stopping the stack");
    await stack.stop();
    await Promise.allSettled([redis.quit(), producer.quit(), watcherConn.quit()]);
  }
}
