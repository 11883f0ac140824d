/**
 * The `waf` command's Redis connection: fails fast and names Redis (with the URL, password
 * masked) when the server cannot be reached, so every command exits within 10 seconds instead
 * of retrying forever the way a long-running service should.
 */
import { type Cluster, Redis } from "ioredis";
import type { RedisClient } from "../core/lib/redis.ts";
import { maskUrl } from "../core/lib/url.ts";
import { createCluster } from "../functions/shared/runtime.ts";
import { RedisUnreachableError } from "./errors.ts";

/** Everything about connecting must be over well within the 10 s promise (reference §7). */
const CONNECT_BUDGET_MS = 6_000;
const CONNECT_TIMEOUT_MS = 3_000;

/** The URL with its credentials masked, for messages (core/lib/url.ts). */
export const maskRedisUrl = maskUrl;
export { RedisUnreachableError };

/** A short reason an operator understands, from a socket or Redis error. */
export function describeConnectError(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  const message = e?.message ?? String(err);
  switch (e?.code) {
    case "ECONNREFUSED":
      return `connection refused (${message}): is the server running, is the port right?`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `host not found (${message})`;
    case "ETIMEDOUT":
      return `connection timed out (${message}): firewall, security group or tunnel?`;
    case "ECONNRESET":
      return `connection reset (${message}): TLS mismatch (rediss:// vs redis://)?`;
  }
  if (/Unknown RESP type|Protocol error/i.test(message)) {
    return `the server there does not speak Redis (${message}): wrong port, or a proxy in the way?`;
  }
  if (/WRONGPASS|NOAUTH|invalid password|invalid username/i.test(message)) {
    return `authentication failed (${message}): check the password in REDIS_URL`;
  }
  return message;
}

function scrub(text: string, url: string): string {
  try {
    const { password, username } = new URL(url);
    let out = text;
    for (const secret of [password, username]) {
      if (secret && secret.length >= 3) out = out.replaceAll(decodeURIComponent(secret), "***");
    }
    return out;
  } catch {
    return text;
  }
}

export interface ConnectOptions {
  /**
   * Keep reconnecting after the first connection was made (`waf alerts --follow`, `waf view`):
   * a Redis restart is then a pause, not the end of the command.
   */
  persistent?: boolean;
  /** `REDIS_MODE`: unset, what the server says (`INFO cluster`) decides. */
  mode?: "single" | "cluster";
}

/**
 * Connects and PINGs, or throws {@link RedisUnreachableError} within about 6 seconds; a server
 * in cluster mode (or `mode: "cluster"`) gets a cluster client, checked the same way.
 * One-shot clients give up on a lost connection; persistent ones reconnect forever.
 */
export async function connectRedis(url: string, opts: ConnectOptions = {}): Promise<RedisClient> {
  const node = await connectNode(url, opts);
  let cluster = opts.mode === "cluster";
  if (opts.mode === undefined) {
    try {
      cluster = /cluster_enabled:1/.test(await node.info("cluster"));
    } catch (err) {
      node.disconnect();
      throw new RedisUnreachableError(maskRedisUrl(url), scrub(describeConnectError(err), url), {
        cause: err,
      });
    }
  }
  if (!cluster) return node;
  node.disconnect();
  return connectCluster(url, opts);
}

/** A cluster client, ready (slots known), or {@link RedisUnreachableError} within the budget. */
async function connectCluster(url: string, opts: ConnectOptions): Promise<Cluster> {
  const cluster = createCluster(url, {
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
  });
  let lastError: unknown;
  cluster.on("error", (err) => {
    lastError = err;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      cluster.ping(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CONNECT_BUDGET_MS / 1000} s`)),
          CONNECT_BUDGET_MS,
        );
      }),
    ]);
    if (!opts.persistent) cluster.options.clusterRetryStrategy = () => null;
    return cluster;
  } catch (err) {
    cluster.disconnect();
    const cause = lastError ?? err;
    throw new RedisUnreachableError(maskRedisUrl(url), scrub(describeConnectError(cause), url), {
      cause,
    });
  } finally {
    clearTimeout(timer);
  }
}

/** A single-node client, PINGed. */
async function connectNode(url: string, opts: ConnectOptions): Promise<Redis> {
  const shown = maskRedisUrl(url);
  let lastError: unknown;
  let connected = false;
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    // Before the first connection: a couple of quick retries, then give up.
    retryStrategy: (times) => {
      if (connected && opts.persistent) return Math.min(times * 250, 2_000);
      return times > 2 ? null : 250 * times;
    },
  });
  redis.on("error", (err) => {
    lastError = err;
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      (async () => {
        await redis.connect();
        await redis.ping();
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CONNECT_BUDGET_MS / 1000} s`)),
          CONNECT_BUDGET_MS,
        );
      }),
    ]);
    connected = true;
    return redis;
  } catch (err) {
    redis.disconnect();
    const cause = lastError ?? err;
    throw new RedisUnreachableError(shown, scrub(describeConnectError(cause), url), { cause });
  } finally {
    clearTimeout(timer);
  }
}
