/**
 * Owns: the Redis connection the reader (stream, DLQ), the scorer (reputation set) and the
 * alerter (alert list, dedup, throttle) share.
 * Differs by stage: `managed` stages get an ElastiCache node in the VPC (`Resource.Redis`:
 * host, port, username, password; TLS required, so `rediss://`); `external` stages (production:
 * the operators' replicated, persistent Redis the WAF shippers write to) get the `RedisUrl`
 * secret (`Resource.RedisUrl.value`). Exactly one of the two is linked on a stage.
 */
import { vpc } from "./network.ts";
import { settings } from "./settings.ts";

export const redis =
  settings.redis.mode === "managed"
    ? new sst.aws.Redis("Redis", {
        vpc,
        instance: settings.redis.instance,
        // one node, no cluster mode: streams, the DLQ and the alert list stay multi-key safe
        cluster: false,
        // a stream is a queue: evicting its entries under memory pressure would lose events
        parameters: { "maxmemory-policy": "noeviction" },
      })
    : new sst.Secret("RedisUrl");
