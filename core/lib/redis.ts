/**
 * The Redis client port: adapters take a connected client that is a single node or a cluster
 * (ioredis `Redis` or `Cluster`, which answer the same commands), never build one. Keys a script
 * or pipeline touches together must share a hash slot on a cluster: see `hashSlot`.
 */
import type { Cluster, Redis } from "ioredis";

export type RedisClient = Redis | Cluster;

/** Whether this client talks to a cluster (its commands are routed by key slot). */
export function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster === true;
}

/**
 * Closes clients for a process that is stopping: QUIT (what was sent is answered first), but for
 * at most `graceMs` — with Redis gone, QUIT waits for a reconnect that may never come — then
 * drops the connections.
 */
export async function closeClients(
  clients: readonly RedisClient[],
  graceMs = 1_000,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.allSettled(clients.map((c) => c.quit())),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    }),
  ]);
  clearTimeout(timer);
  for (const c of clients) c.disconnect();
}

/**
 * What went wrong with Redis, as fixed text for logs and health answers (messages can carry
 * hosts, keys or, from other libraries, URLs): a socket error's code (`ECONNREFUSED`), a Redis
 * error reply's code (`WRONGPASS`, `OOM`, `READONLY`, `CLUSTERDOWN`), else the error's name.
 */
export function redisErrorCode(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === "string" && /^[A-Z0-9_]{2,40}$/.test(e.code)) return e.code;
  if (e?.name === "ReplyError" && typeof e.message === "string") {
    const word = /^([A-Z][A-Z0-9_]{1,39})\b/.exec(e.message)?.[1];
    if (word) return word;
  }
  return typeof e?.name === "string" && /^\w{1,60}$/.test(e.name) ? e.name : "Error";
}
