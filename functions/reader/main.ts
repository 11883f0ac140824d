/**
 * The stream reader's entry point (the Fargate task; also started by `npm start`).
 * Reads config, builds clients once, runs the reader until SIGTERM/SIGINT, drains, exits 0.
 */

import { hostname } from "node:os";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { ConfigError } from "../../core/config.ts";
import { streamNames } from "../../core/stream/keys.ts";
import { StreamReader } from "../../core/stream/reader.ts";
import { RedisStream } from "../../core/stream/redis-stream.ts";
import { streamStatus } from "../../core/stream/status.ts";
import { createLambdaClient } from "../shared/lambda.ts";
import { createMetrics } from "../shared/metrics.ts";
import { createLogger, createRedis, runtimeConfig } from "../shared/runtime.ts";
import { startHealthServer } from "./health.ts";
import { createLambdaInvoker } from "./invoker.ts";

/** How often the reader publishes its gauges (the heartbeat alarm expects at least 1/min). */
const GAUGE_INTERVAL_MS = 60_000;

async function main(): Promise<void> {
  const config = await runtimeConfig();
  const logger = createLogger("waf-reader", config.LOG_LEVEL);
  if (!config.SCORER_FUNCTION)
    throw new ConfigError("SCORER_FUNCTION", "is required by the reader");
  const redis = createRedis(config.REDIS_URL, {}, logger);
  // Blocking reads get their own connection, with no per-command timeout (it would kill BLOCK).
  const blockingRedis = createRedis(config.REDIS_URL, { maxRetriesPerRequest: null }, logger);
  const lambda = createLambdaClient({ maxAttempts: 1 });
  const names = streamNames(config);
  const consumer = config.CONSUMER_NAME ?? `${hostname()}-${process.pid}`;
  const reader = new StreamReader({
    stream: new RedisStream({
      redis,
      blocking: blockingRedis,
      key: names.stream,
      group: names.group,
      consumer,
    }),
    invoker: createLambdaInvoker(lambda, config.SCORER_FUNCTION),
    logger,
    field: names.field,
    batchSize: config.BATCH_SIZE,
    batchWindowMs: config.BATCH_WINDOW_MS,
    maxInFlight: config.MAX_IN_FLIGHT,
    maxRetries: config.MAX_RETRIES,
    maxRecordBytes: config.MAX_RECORD_BYTES,
    dlqKey: names.dlq,
    dlqMaxLen: config.DLQ_MAXLEN,
    claimIdleMs: config.CLAIM_IDLE_MS,
  });

  let health: Awaited<ReturnType<typeof startHealthServer>> | undefined;
  let stopping = false;
  const shutdown = async (signal: string) => {
    // A second signal during the drain must not abort it (npm forwards signals twice).
    if (stopping) return;
    stopping = true;
    logger.info("stopping: draining in-flight batches", { signal });
    await reader.stop(config.DRAIN_TIMEOUT_MS);
    health?.server.close();
    logger.info("stopped", { ...reader.stats() });
    await Promise.allSettled([redis.quit(), blockingRedis.quit()]);
    lambda.destroy();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  await reader.start();
  health = await startHealthServer({
    port: config.HEALTH_PORT,
    redis,
    names,
    influxUrl: process.env.INFLUXDB_URL ? config.INFLUXDB_URL : undefined,
    readerStats: () => ({ ...reader.stats(), running: reader.isRunning }),
  });

  // Gauges for CloudWatch (EMF): lag, pending, DLQ length; published even when idle.
  const metrics = createMetrics("waf-reader");
  const publishGauges = async () => {
    try {
      const s = await streamStatus(redis, names);
      if (s.lag !== undefined) metrics.addMetric("ConsumerLag", MetricUnit.Count, s.lag);
      metrics.addMetric("PendingEntries", MetricUnit.Count, s.pending);
      metrics.addMetric("DlqLength", MetricUnit.Count, s.dlqLength);
      metrics.publishStoredMetrics();
    } catch (err) {
      logger.warn("could not read stream status for metrics", { error: (err as Error).message });
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
    stream: config.STREAM_KEY,
    group: config.CONSUMER_GROUP,
    consumer,
    host: hostname(),
  });
  const statsEvery = setInterval(() => logger.debug("reader stats", { ...reader.stats() }), 60_000);
  statsEvery.unref();
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`waf-reader: ${message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
