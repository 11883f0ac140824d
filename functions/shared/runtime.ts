/**
 * What every entry point shares: configuration (environment + SST-linked secrets), the
 * Powertools logger, and client construction. Clients are built once per process (module
 * scope in the handlers) and reused across invocations.
 */
import { Logger as PowertoolsLogger } from "@aws-lambda-powertools/logger";
import { Redis, type RedisOptions } from "ioredis";
import { type Config, loadConfig } from "../../core/config.ts";
import type { Logger } from "../../core/lib/logger.ts";

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

/**
 * A Redis client for REDIS_URL (`rediss://` for TLS, passwords in the URL). Commands fail
 * fast while disconnected instead of queueing without bound. Connection errors are logged
 * (at most one line per 10 s, the error's code only: no address, no URL) instead of
 * ioredis's "Unhandled error event"; the client keeps reconnecting by itself.
 */
export function createRedis(url: string, extra: RedisOptions = {}, logger?: Logger): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    connectTimeout: 5000,
    ...extra,
  });
  let lastLoggedAt = 0;
  redis.on("error", (err: NodeJS.ErrnoException) => {
    const now = Date.now();
    if (now - lastLoggedAt < 10_000) return;
    lastLoggedAt = now;
    logger?.warn("redis connection error; reconnecting", { error: err.code ?? err.name });
  });
  return redis;
}

export { readMaliciousIpsFile } from "./malicious-ips.ts";
