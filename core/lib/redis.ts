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
