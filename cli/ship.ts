/**
 * `waf ship [--state FILE] PATH…` (reference §7): the long-running shipper for the WAF host. Tails
 * ModSecurity v3 / Coraza JSON audit logs — files, quoted globs (`'/var/log/modsec_audit.log*'`,
 * expanded on every scan, so rotated files are recognised), Concurrent-log directories — and
 * adds each record verbatim to STREAM_KEY (field STREAM_FIELD, `MAXLEN ~ SHIP_MAXLEN`), at least
 * once. The checkpoint (`--state`, default `./waf-ship.state.json`) holds acknowledged offsets
 * only.
 *
 * Like every `waf` command it exits 3 within 10 s when Redis cannot be reached at start-up;
 * once running it rides out outages (retries with backoff, reading paused, nothing lost).
 * SIGTERM/SIGINT: stop reading, send what was read, write the checkpoint, exit 0.
 */

import { resolve } from "node:path";
import type { Config } from "../core/config.ts";
import type { Logger } from "../core/lib/logger.ts";
import { closeClients } from "../core/lib/redis.ts";
import { acquireLock, classifyPaths, LockedError } from "../core/ship/files.ts";
import { GlobError } from "../core/ship/glob.ts";
import { type ShipHealth, startShipHealth } from "../core/ship/health.ts";
import { RedisStreamProducer } from "../core/ship/producer.ts";
import { Shipper } from "../core/ship/shipper.ts";
import { streamNames } from "../core/stream/keys.ts";
import { createLogger, topologyOf } from "../functions/shared/runtime.ts";
import { parse, UsageError } from "./args.ts";
import type { Io } from "./commands.ts";
import { connectRedis, maskRedisUrl } from "./redis.ts";

/** How long a stop waits for Redis to acknowledge what was read (docker stop allows 10 s). */
const DRAIN_MS = 5_000;
export const DEFAULT_STATE_FILE = "waf-ship.state.json";

const USAGE =
  "waf ship [--state FILE] [--health-host H] PATH… (PATH: an audit log file, a quoted glob such as '/var/log/modsec_audit.log*', or a Concurrent-log directory)";

export async function shipCommand(args: string[], config: Config, io: Io): Promise<number> {
  const { values, positionals } = parse("ship", args, {
    state: { type: "string" },
    "health-host": { type: "string" },
  });
  if (positionals.length === 0) throw new UsageError(`waf ship: which audit logs? ${USAGE}`);
  const stateFile = resolve(values.state ?? DEFAULT_STATE_FILE);
  const paths = await classifyPaths(positionals).catch((e: unknown) => {
    throw e instanceof GlobError ? new UsageError(`waf ship: ${e.message}`) : e;
  });

  // Fails within 10 s naming Redis (exit 3); afterwards the connection reconnects for ever.
  const redis = await connectRedis(config.REDIS_URL, { persistent: true });
  let release: (() => Promise<void>) | undefined;
  try {
    release = await acquireLock(stateFile);
  } catch (e) {
    redis.disconnect();
    if (e instanceof LockedError) throw new UsageError(`waf ship: ${e.message}`);
    throw e;
  }

  const logger: Logger = createLogger("waf-ship", config.LOG_LEVEL);
  const shipper = new Shipper({
    paths,
    stateFile,
    producer: new RedisStreamProducer(redis, {
      shards: streamNames(config, topologyOf(config, redis)).shards,
      field: config.STREAM_FIELD,
      maxLen: config.SHIP_MAXLEN,
    }),
    logger,
    maxRecordBytes: config.MAX_RECORD_BYTES,
  });

  let stopRequested: (signal: string) => void = () => undefined;
  const stopped = new Promise<string>((res) => {
    stopRequested = res;
  });
  // A second signal does not cut the drain short: it is bounded by DRAIN_MS anyway.
  const onSignal = (signal: NodeJS.Signals) => stopRequested(signal);
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // Started by `npm start` (an IPC channel): stop with the parent.
  const onDisconnect = () => stopRequested("parent exited");
  if (process.send) process.on("disconnect", onDisconnect);

  let health: ShipHealth | undefined;
  let running = false;
  try {
    await shipper.start();
    running = true;
    if (config.SHIP_HEALTH_PORT !== undefined) {
      const host = values["health-host"] ?? "127.0.0.1";
      health = await startShipHealth({
        port: config.SHIP_HEALTH_PORT,
        host,
        stats: () => ({ ...shipper.stats(), running }),
      }).catch((e: Error) => {
        logger.warn("health endpoint not started; shipping anyway", {
          port: config.SHIP_HEALTH_PORT,
          host,
          error: e.message,
        });
        return undefined;
      });
    }
    logger.info("shipping audit logs", {
      paths: positionals,
      stream: config.STREAM_KEY,
      redis: maskRedisUrl(config.REDIS_URL),
      state: stateFile,
      maxlen: config.SHIP_MAXLEN,
      ...(health ? { health: health.url } : {}),
    });
    process.send?.({ ready: true, healthUrl: health?.url, stateFile });
    const why = await Promise.race([stopped, shipper.done().then(() => "loop ended")]);
    logger.info("stopping: sending what was read, writing the checkpoint", { reason: why });
    running = false;
    await shipper.stop(DRAIN_MS);
    logger.info("stopped", { ...shipper.stats() });
    return 0;
  } catch (e) {
    running = false;
    logger.error("the shipper failed", { error: (e as Error).message });
    await shipper.stop(DRAIN_MS).catch(() => undefined);
    io.stderr.write(`waf ship: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    process.off("disconnect", onDisconnect);
    await health?.close();
    await closeClients([redis]);
    await release?.();
  }
}
