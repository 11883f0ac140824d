/**
 * Owns: the Redis connection the reader (stream, DLQ), the scorer (reputation set) and the
 * alerter (alert list, dedup, throttle) share.
 * Differs by stage: `managed` stages get an ElastiCache node in the VPC (`Resource.Redis`:
 * host, port, username, password; TLS required, so `rediss://`); `external` stages (production:
 * the operators' replicated, persistent Redis the WAF shippers write to) get the `RedisUrl`
 * secret (`Resource.RedisUrl.value`). Exactly one of the two is linked on a stage.
 * The reader's container gets the URL, credentials included, from an SSM SecureString at start
 * (ECS `secrets`), never from its plain environment (`redisUrlParameter`).
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

/**
 * The whole Redis URL (`rediss://user:password@host:port`, or the `RedisUrl` secret) as an SSM
 * SecureString: ECS injects it into the reader's container at start (`ssm` on the Service), so
 * the task definition — readable by anyone with ecs:DescribeTaskDefinition — never holds it.
 */
export const redisUrlParameter = new aws.ssm.Parameter("ReaderRedisUrl", {
  type: "SecureString",
  description: "REDIS_URL of the WAF stream reader (credentials included)",
  value:
    redis instanceof sst.aws.Redis
      ? $interpolate`rediss://${redis.username.apply(encodeURIComponent)}:${(redis.password ?? $output("")).apply(encodeURIComponent)}@${redis.host}:${redis.port}`
      : redis.value,
});
