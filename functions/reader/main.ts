/**
 * The stream reader's entry point (the Fargate task; also started by `npm start`).
 * Reads config, builds clients once, runs the reader until SIGTERM/SIGINT, drains, exits 0.
 */
import { hostname } from "node:os";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { ConfigError } from "../../core/config.ts";
import { StreamReader } from "../../core/stream/reader.ts";
import { createLogger, createRedis, runtimeConfig } from "../shared/runtime.ts";
import { createLambdaInvoker } from "./invoker.ts";

async function main(): Promise<void> {
  const config = await runtimeConfig();
  const logger = createLogger("waf-reader", config.LOG_LEVEL);
  if (!config.SCORER_FUNCTION)
    throw new ConfigError("SCORER_FUNCTION", "is required by the reader");
  const redis = createRedis(config.REDIS_URL);
  // Blocking reads get their own connection, with no per-command timeout (it would kill BLOCK).
  const blockingRedis = createRedis(config.REDIS_URL, { maxRetriesPerRequest: null });
  const lambda = new LambdaClient({ maxAttempts: 1 });
  const reader = new StreamReader({
    redis,
    blockingRedis,
    invoker: createLambdaInvoker(lambda, config.SCORER_FUNCTION),
    logger,
    streamKey: config.STREAM_KEY,
    field: config.STREAM_FIELD,
    group: config.CONSUMER_GROUP,
    consumer: config.CONSUMER_NAME,
    batchSize: config.BATCH_SIZE,
    batchWindowMs: config.BATCH_WINDOW_MS,
    maxInFlight: config.MAX_IN_FLIGHT,
    maxRetries: config.MAX_RETRIES,
    maxRecordBytes: config.MAX_RECORD_BYTES,
    dlqKey: config.DLQ_STREAM_KEY,
    dlqMaxLen: config.DLQ_MAXLEN,
    claimIdleMs: config.CLAIM_IDLE_MS,
  });

  let stopping = false;
  const shutdown = async (signal: string) => {
    // A second signal during the drain must not abort it (npm forwards signals twice).
    if (stopping) return;
    stopping = true;
    logger.info("stopping: draining in-flight batches", { signal });
    await reader.stop(config.DRAIN_TIMEOUT_MS);
    logger.info("stopped", { ...reader.stats() });
    await Promise.allSettled([redis.quit(), blockingRedis.quit()]);
    lambda.destroy();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  await reader.start();
  // Under `npm start` the parent waits for this; on AWS there is no IPC channel.
  process.send?.({ ready: true });
  if (process.send) process.on("disconnect", () => void shutdown("parent exited"));
  logger.info("reader started", {
    stream: config.STREAM_KEY,
    group: config.CONSUMER_GROUP,
    consumer: config.CONSUMER_NAME,
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
