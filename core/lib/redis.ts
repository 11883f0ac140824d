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
