/**
 * The stream reader's entry point (the Fargate task; also started by `npm start`).
 * Reads config, builds clients once (a single node or a cluster, detected at start), runs one
 * reader per stream shard — all sharing one limit of in-flight invocations — until
 * SIGTERM/SIGINT, drains, exits 0.
 */
import { hostname } from "node:os";
import { getHeapStatistics } from "node:v8";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { ConfigError } from "../../core/config.ts";
import { Limiter } from "../../core/lib/limiter.ts";
import { closeClients } from "../../core/lib/redis.ts";
import { readerWorstHeapBytes } from "../../core/stream/contract.ts";
import { streamNames } from "../../core/stream/keys.ts";
import { type ReaderStats, StreamReader } from "../../core/stream/reader.ts";
import { RedisStream } from "../../core/stream/redis-stream.ts";
import { shardedStatus } from "../../core/stream/status.ts";
import { createLambdaClient } from "../shared/lambda.ts";
import { createMetrics } from "../shared/metrics.ts";
import {
  createLogger,
  openRedis,
  redisMode,
  runtimeConfig,
  topologyOf,
} from "../shared/runtime.ts";
import { startHealthServer } from "./health.ts";
import { createLambdaInvoker } from "./invoker.ts";

/** How often the reader publishes its gauges (the heartbeat alarm expects at least 1/min). */
const GAUGE_INTERVAL_MS = 60_000;

/** The readers' stats added up (one reader per shard). */
function totals(readers: StreamReader[]): ReaderStats & { running: boolean } {
  const all = readers.map((r) => r.stats());
  const sum = (k: keyof ReaderStats) => all.reduce((n, s) => n + Number(s[k]), 0);
  return {
    read: sum("read"),
    acked: sum("acked"),
    deadLettered: sum("deadLettered"),
    retried: sum("retried"),
    claimed: sum("claimed"),
    reapedConsumers: sum("reapedConsumers"),
    invocations: sum("invocations"),
    invocationErrors: sum("invocationErrors"),
    // The slots are shared: every reader reports the same count.
    inFlight: all[0]?.inFlight ?? 0,
    scheduledRetries: sum("scheduledRetries"),
    paused: all.some((s) => s.paused),
    running: readers.every((r) => r.isRunning),
  };
}

async function main(): Promise<void> {
  const config = await runtimeConfig();
  const logger = createLogger("waf-reader", config.LOG_LEVEL);
  if (!config.SCORER_FUNCTION)
    throw new ConfigError("SCORER_FUNCTION", "is required by the reader");
  const mode = await redisMode(config);
  const redis = openRedis(config.REDIS_URL, mode, {}, logger);
  const names = streamNames(config, topologyOf(config, redis));
  const lambda = createLambdaClient({ maxAttempts: 1 });
  const invoker = createLambdaInvoker(lambda, config.SCORER_FUNCTION);
  const consumer = config.CONSUMER_NAME ?? `${hostname()}-${process.pid}`;
  const slots = new Limiter(config.MAX_IN_FLIGHT);
  // Blocking reads get connections of their own, one per shard, with no per-command timeout
  // (it would kill BLOCK): a blocking read stalls everything else on its connection.
  const blocking = names.shards.map(() =>
    openRedis(config.REDIS_URL, mode, { maxRetriesPerRequest: null }, logger),
  );
  const readers = names.shards.map(
    (shard, i) =>
      new StreamReader({
        stream: new RedisStream({
          redis,
          blocking: blocking[i],
          key: shard.stream,
          group: names.group,
          consumer,
        }),
        invoker,
        logger,
        field: names.field,
        batchSize: config.BATCH_SIZE,
        batchWindowMs: config.BATCH_WINDOW_MS,
        maxInFlight: config.MAX_IN_FLIGHT,
        slots,
        maxRetries: config.MAX_RETRIES,
        maxRecordBytes: config.MAX_RECORD_BYTES,
        dlqKey: shard.dlq,
        shard: shard.index,
        dlqMaxLen: config.DLQ_MAXLEN,
        claimIdleMs: config.CLAIM_IDLE_MS,
      }),
  );

  let health: Awaited<ReturnType<typeof startHealthServer>> | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    // A second signal during the drain must not abort it (npm forwards signals twice).
    if (stopping) return;
    stopping = true;
    logger.info("stopping: draining in-flight batches", { signal });
    await Promise.all(readers.map((r) => r.stop(config.DRAIN_TIMEOUT_MS)));
    health?.server.close();
    logger.info("stopped", { ...totals(readers) });
    await closeClients([redis, ...blocking]);
    lambda.destroy();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  await Promise.all(readers.map((r) => r.start()));
  health = await startHealthServer({
    port: config.HEALTH_PORT,
    redis,
    names,
    influxUrl: process.env.INFLUXDB_URL ? config.INFLUXDB_URL : undefined,
    readerStats: () => totals(readers),
  });

  // Gauges for CloudWatch (EMF): lag, pending, DLQ length over every shard; published even when
  // idle. `ConsumerLag` is what the service scales on.
  const metrics = createMetrics("waf-reader");
  let deadLetteredBefore = 0;
  const publishGauges = async () => {
    // Records this task dead-lettered since the last publication: the DLQ alarm counts these
    // (the DLQ stream is capped, so its length stops growing once full).
    const deadLettered = totals(readers).deadLettered;
    metrics.addMetric("DeadLettered", MetricUnit.Count, deadLettered - deadLetteredBefore);
    deadLetteredBefore = deadLettered;
    try {
      const s = await shardedStatus(redis, names);
      if (s.lag !== undefined) metrics.addMetric("ConsumerLag", MetricUnit.Count, s.lag);
      metrics.addMetric("PendingEntries", MetricUnit.Count, s.pending);
      metrics.addMetric("DlqLength", MetricUnit.Count, s.dlqLength);
      metrics.publishStoredMetrics();
    } catch (err) {
      logger.warn("could not read stream status for metrics", { error: (err as Error).name });
      metrics.publishStoredMetrics(); // DeadLettered still counts
    }
  };
  void publishGauges();
  const gauges = setInterval(() => void publishGauges(), GAUGE_INTERVAL_MS);
  gauges.unref();
  // Under `npm start` the parent waits for this; on AWS there is no IPC channel.
  process.send?.({ ready: true, healthPort: health.port });
  if (process.send) process.on("disconnect", () => void shutdown("parent exited"));
  logger.info("reader started", {
    health_port: health?.port,
    redis: mode,
    shards: names.shards.map((s) => s.stream),
    group: names.group,
    consumer,
    host: hostname(),
  });
  // What this configuration could make the reader hold at once (infra/stages.ts checks the
  // deployed stages; here a local or hand-made configuration gets told).
  const worst = readerWorstHeapBytes({
    maxInFlight: config.MAX_IN_FLIGHT,
    shards: config.STREAM_SHARDS,
    batchSize: config.BATCH_SIZE,
    maxRecordBytes: config.MAX_RECORD_BYTES,
  });
  const heapLimit = getHeapStatistics().heap_size_limit;
  if (worst > heapLimit) {
    logger.warn("a burst of records at MAX_RECORD_BYTES could exhaust the reader's heap", {
      worst_case_mb: Math.ceil(worst / 2 ** 20),
      heap_limit_mb: Math.floor(heapLimit / 2 ** 20),
      fix: "lower BATCH_SIZE or MAX_RECORD_BYTES (or MAX_IN_FLIGHT)",
    });
  }
  const statsEvery = setInterval(
    () => logger.debug("reader stats", { ...totals(readers) }),
    60_000,
  );
  statsEvery.unref();
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`waf-reader: ${message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
