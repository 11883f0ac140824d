/**
 * `npm start`: the whole pipeline on this machine (reference §7). Throwaway Redis and
 * VictoriaMetrics (or InfluxDB 1.x with INFLUXDB_API=v1) unless REDIS_URL / INFLUXDB_URL are
 * set; the local Lambda runtime hosting the scoring and alert functions; the stream reader.
 * Prints a one-line live summary; Ctrl-C drains and stops everything.
 *
 *   npm start                 the pipeline, waiting for records on the stream
 *   npm start -- --waf        also a real nginx + ModSecurity + CRS, `waf ship` on its audit log
 *   npm start -- --demo       --waf, and real attack and benign requests through it
 *   npm start -- --logs       stream the processes' JSON logs here instead of the summary
 *   npm start -- --view-port 9000   the live view's port (default 8900, or any free one if taken)
 */

import { spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { ConfigError, loadConfig } from "../core/config.ts";
import { closeClients, type RedisClient } from "../core/lib/redis.ts";
import { maskUrl } from "../core/lib/url.ts";
import { type StreamNames, streamNames } from "../core/stream/keys.ts";
import { shardedStatus } from "../core/stream/status.ts";
import { openRedis, redisMode, topologyOf } from "../functions/shared/runtime.ts";
import { type Stack, startStack } from "./stack.ts";
import { startLocalWaf } from "./waf.ts";
import { type LiveView, startLiveView } from "./web/server.ts";

const argv = process.argv.slice(2);
const args = new Set(argv);
const demo = args.has("--demo");
const showLogs = args.has("--logs");
const logDir = resolve(process.env.WAF_LOG_DIR ?? ".tmp/logs");
const DEFAULT_VIEW_PORT = 8900;

/** `--view-port P` or `--view-port=P`; undefined when not given. */
function viewPortArg(): number | undefined {
  const i = argv.findIndex((a) => a === "--view-port" || a.startsWith("--view-port="));
  if (i === -1) return undefined;
  const raw = argv[i]?.includes("=") ? argv[i]?.split("=")[1] : argv[i + 1];
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new Error(`--view-port must be a port number (got "${raw}")`);
  return port;
}

/** The live view on the asked port, else on 8900, else (taken) on any free port. */
async function startView(
  redis: RedisClient,
  redisLabel: string,
  config: ReturnType<typeof loadConfig>,
  names: StreamNames,
  port: number | undefined,
): Promise<LiveView> {
  const opts = {
    redis,
    redisLabel,
    names,
    alertListKey: config.ALERT_LIST_KEY,
  };
  try {
    return await startLiveView({ ...opts, port: port ?? DEFAULT_VIEW_PORT });
  } catch (err) {
    if (port !== undefined || (err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    return startLiveView({ ...opts, port: 0 });
  }
}

function unset(name: string): boolean {
  return (process.env[name] ?? "").trim() === "";
}

async function main(): Promise<void> {
  const config = loadConfig(process.env); // fail fast, naming the variable
  const viewPort = viewPortArg();
  const influxApi = config.INFLUXDB_API;
  console.log("waf: starting the local pipeline…");
  const stack: Stack = await startStack({
    redisUrl: unset("REDIS_URL") ? undefined : config.REDIS_URL,
    influxUrl: unset("INFLUXDB_URL") ? undefined : config.INFLUXDB_URL,
    influxApi,
    logDir,
    env: { CONSUMER_NAME: process.env.CONSUMER_NAME ?? "local-reader" },
  });
  // A single node or a cluster, as the pipeline's own processes find it. The summary is best
  // effort: a lost connection shows as a stale line, never as an error dump (no logger).
  const mode = await redisMode({ REDIS_URL: stack.redisUrl, REDIS_MODE: config.REDIS_MODE });
  const redis = openRedis(stack.redisUrl, mode);
  const names = streamNames(config, topologyOf(config, redis));
  // Printed, so never with a password (the URLs may come from the environment).
  const redisShown = maskUrl(stack.redisUrl);
  const influxShown = maskUrl(stack.influxUrl);
  let view: LiveView;
  try {
    view = await startView(redis, redisShown, config, names, viewPort);
  } catch (err) {
    redis.disconnect();
    await stack.stop();
    throw new Error(`live view: ${(err as Error).message}`, { cause: err });
  }
  const localWaf =
    args.has("--waf") || demo
      ? await startLocalWaf({ redisUrl: stack.redisUrl, env: stack.env, logDir, demo })
      : undefined;
  // Ctrl-C works from the moment the summary below says it does.
  let tail: ReturnType<typeof spawn> | undefined;
  let summary: ReturnType<typeof setInterval> | undefined;
  let stopping = false;
  const tty = process.stdout.isTTY && !showLogs;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(summary);
    if (tty) process.stdout.write("\n");
    console.log(`waf: ${signal}: draining the reader and stopping…`);
    tail?.kill();
    // The WAF and its shipper first: what they wrote reaches the stream while the reader reads.
    await localWaf?.stop();
    await view.close();
    await closeClients([redis]);
    await stack.stop();
    console.log("waf: stopped.");
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  console.log(
    [
      ...(localWaf ? [localWaf.summary] : []),
      `  Redis       ${redisShown}${stack.services.redis ? " (throwaway)" : ""}`,
      `  InfluxDB    ${influxShown} (${influxApi} API${stack.services.influx ? `, throwaway ${influxApi === "v1" ? "InfluxDB 1.x" : "VictoriaMetrics"}` : ""}, bucket ${config.INFLUXDB_BUCKET})`,
      `  Invoke API  ${stack.lambdaUrl} (functions waf-scorer, waf-alerter)`,
      `  live view   ${view.url}`,
      `  health      ${stack.healthUrl() ?? "(reader not started)"}`,
      `  logs        ${logDir}/{reader,runtime}.log`,
      `  send        redis-cli -u ${redisShown} XADD ${config.STREAM_KEY} '*' ${config.STREAM_FIELD} '<audit record JSON>'`,
      `  alerts      redis-cli -u ${redisShown} LRANGE ${config.ALERT_LIST_KEY} 0 9`,
      `  waf         REDIS_URL=${redisShown} npx waf status | alerts --follow | replay FILE | dlq list`,
      "  Ctrl-C stops everything.",
    ].join("\n"),
  );

  if (showLogs) {
    tail = spawn(
      "tail",
      ["-n", "0", "-F", join(logDir, "reader.log"), join(logDir, "runtime.log")],
      {
        stdio: ["ignore", "inherit", "inherit"],
      },
    );
  }

  const status = () => shardedStatus(redis, names);
  let last = await status();
  let lastAt = Date.now();
  summary = setInterval(
    async () => {
      try {
        const now = Date.now();
        const g = await status();
        const alerts = await redis.llen(config.ALERT_LIST_KEY);
        const done = g.entriesRead - g.pending;
        const rate =
          ((done - (last.entriesRead - last.pending)) * 1000) / Math.max(1, now - lastAt);
        last = g;
        lastAt = now;
        const perShard =
          g.shards.length > 1 ? ` (${g.shards.map((x) => x.lag ?? "?").join("+")})` : "";
        const line = `events/s ${rate.toFixed(0).padStart(6)} | processed ${done} | alerts ${alerts} | dlq ${g.dlqLength} | lag ${g.lag ?? "?"}${perShard} | pending ${g.pending}`;
        if (tty) process.stdout.write(`\r\x1b[2K${line}`);
        else if (!showLogs) console.log(line);
      } catch {
        // Summary is best effort; the pipeline's own logs tell what is wrong.
      }
    },
    tty ? 1000 : 5000,
  );
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(`waf: ${err.message}`);
  else console.error(`waf: could not start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
