/**
 * What every entry point shares: configuration (environment + SST-linked secrets), the
 * Powertools logger, and client construction. Clients are built once per process (module
 * scope in the handlers) and reused across invocations.
 */
import { Logger as PowertoolsLogger } from "@aws-lambda-powertools/logger";
import { Cluster, Redis, type RedisOptions } from "ioredis";
import { type Config, loadConfig } from "../../core/config.ts";
import type { Logger } from "../../core/lib/logger.ts";
import { isCluster, type RedisClient, redisErrorCode } from "../../core/lib/redis.ts";
import type { Topology } from "../../core/stream/keys.ts";

/** SST secret (linked resource) → the environment variable it stands for (reference §6). */
const SECRETS: Record<string, string> = {
  InfluxToken: "INFLUXDB_TOKEN",
  SlackWebhookUrl: "SLACK_WEBHOOK_URL",
  PagerDutyRoutingKey: "PAGERDUTY_ROUTING_KEY",
  AlertWebhookUrl: "ALERT_WEBHOOK_URL",
  AlertWebhookSecret: "ALERT_WEBHOOK_SECRET",
  IpHashKey: "IP_HASH_KEY",
  RedisUrl: "REDIS_URL",
};

/**
 * The environment with SST-linked secrets filled in where the variable itself is unset.
 * Outside AWS (no `SST_RESOURCE_*` variables) it is just `process.env`.
 */
export async function runtimeEnv(
  env: NodeJS.ProcessEnv = process.env,
): Promise<Record<string, string | undefined>> {
  const out: Record<string, string | undefined> = { ...env };
  const linked = Object.keys(env).some(
    (k) => k.startsWith("SST_RESOURCE_") || k === "SST_KEY_FILE",
  );
  if (!linked) return out;
  const { Resource } = await import("sst");
  const resources = Resource as unknown as Record<string, Record<string, unknown> | undefined>;
  const read = (name: string): Record<string, unknown> | undefined => {
    try {
      return resources[name];
    } catch {
      return undefined; // not linked to this function
    }
  };
  for (const [name, variable] of Object.entries(SECRETS)) {
    const value = read(name)?.value;
    if (!out[variable] && typeof value === "string" && value !== "") out[variable] = value;
  }
  // A managed sst.aws.Redis link (ElastiCache, TLS, AUTH) becomes REDIS_URL.
  const redis = read("Redis");
  if (!out.REDIS_URL && redis?.host) {
    const user = encodeURIComponent(String(redis.username ?? "default"));
    const pass = encodeURIComponent(String(redis.password ?? ""));
    out.REDIS_URL = `rediss://${user}:${pass}@${String(redis.host)}:${String(redis.port ?? 6379)}`;
  }
  return out;
}

/** Validated configuration; throws ConfigError naming the variable. */
export async function runtimeConfig(env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  return loadConfig(await runtimeEnv(env));
}

const POWERTOOLS_LEVELS = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warn: "WARN",
  error: "ERROR",
  critical: "CRITICAL",
  silent: "SILENT",
} as const;

/** A Powertools logger (structured JSON: level, message, timestamp, service). */
export function createLogger(serviceName: string, level: Config["LOG_LEVEL"]): PowertoolsLogger {
  return new PowertoolsLogger({
    serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? serviceName,
    logLevel: POWERTOOLS_LEVELS[level],
  });
}

/** Options every connection of ours takes: commands fail fast while disconnected. */
const BASE_OPTIONS: RedisOptions = {
  maxRetriesPerRequest: 2,
  enableOfflineQueue: true,
  connectTimeout: 5000,
};

/**
 * Logs a client's connection errors (at most one line per 10 s, the error's code only: no
 * address, no URL) instead of ioredis's "Unhandled error event"; the client reconnects by itself.
 */
function logErrors(client: RedisClient, logger: Logger | undefined): void {
  let lastLoggedAt = 0;
  client.on("error", (err: NodeJS.ErrnoException) => {
    const now = Date.now();
    if (now - lastLoggedAt < 10_000) return;
    lastLoggedAt = now;
    logger?.warn("redis connection error; reconnecting", { error: redisErrorCode(err) });
  });
}

/** A single-node client for REDIS_URL (`rediss://` for TLS, passwords in the URL). */
export function createRedis(url: string, extra: RedisOptions = {}, logger?: Logger): Redis {
  const redis = new Redis(url, { ...BASE_OPTIONS, ...extra });
  logErrors(redis, logger);
  return redis;
}

/** Whether the server at REDIS_URL runs in cluster mode (`INFO cluster`). */
export async function detectCluster(url: string): Promise<boolean> {
  const probe = new Redis(url, {
    ...BASE_OPTIONS,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
  });
  // The server's own refusal (WRONGPASS, …) says more than "Connection is closed".
  let refusal: unknown;
  probe.on("error", (err) => {
    refusal ??= err;
  });
  try {
    await probe.connect();
    const info = await probe.info("cluster");
    return /cluster_enabled:1/.test(info);
  } catch (err) {
    throw refusal ?? err;
  } finally {
    probe.disconnect();
  }
}

/**
 * A cluster client for REDIS_URL's node: the URL's credentials and TLS apply to every node it
 * discovers. Nodes are addressed as the cluster announces them (no reverse DNS: ElastiCache's
 * TLS certificates name the configuration endpoint's domain, which `dnsLookup` keeps).
 */
export function createCluster(url: string, extra: RedisOptions = {}, logger?: Logger): Cluster {
  const u = new URL(url);
  const tls = u.protocol === "rediss:" ? { servername: u.hostname } : undefined;
  const cluster = new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
    dnsLookup: (address, callback) => callback(null, address),
    enableOfflineQueue: true,
    slotsRefreshTimeout: 5000,
    redisOptions: {
      ...BASE_OPTIONS,
      ...extra,
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
      ...(tls ? { tls } : {}),
    },
  });
  logErrors(cluster, logger);
  return cluster;
}

/** `REDIS_MODE` when set, else what the server says. */
export async function redisMode(
  config: Pick<Config, "REDIS_URL" | "REDIS_MODE">,
): Promise<"single" | "cluster"> {
  if (config.REDIS_MODE) return config.REDIS_MODE;
  return (await detectCluster(config.REDIS_URL)) ? "cluster" : "single";
}

/**
 * A client for REDIS_URL of the given mode (`redisMode`): a single node or a cluster, which
 * every adapter takes alike (core/lib/redis.ts).
 */
export function openRedis(
  url: string,
  mode: "single" | "cluster",
  extra: RedisOptions = {},
  logger?: Logger,
): RedisClient {
  return mode === "cluster" ? createCluster(url, extra, logger) : createRedis(url, extra, logger);
}

/** The stream's names for this configuration and client (shards, cluster hash tags). */
export function topologyOf(config: Pick<Config, "STREAM_SHARDS">, client: RedisClient): Topology {
  return { cluster: isCluster(client), shards: config.STREAM_SHARDS };
}

export { readMaliciousIpsFile } from "./malicious-ips.ts";
