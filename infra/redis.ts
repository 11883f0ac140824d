/**
 * Owns: the Redis the reader (streams, DLQs), the scorer (reputation, campaigns) and the alerter
 * (alert list, dedup, throttle) share, and the reader's `REDIS_URL` parameter.
 * Differs by stage: `managed` stages get ElastiCache in the VPC (`Resource.Redis`: host, port,
 * username, password; TLS required, so `rediss://`): one primary (dev), or cluster mode with
 * `redis.cluster.shards` primaries (staging, production), replicas per shard with Multi-AZ
 * failover and daily snapshots (production). On a cluster the host is the configuration
 * endpoint, a valid entry URL: every runtime gets `REDIS_MODE=cluster` (environment.ts).
 * `external` stages get the `RedisUrl` secret (`Resource.RedisUrl.value`) instead.
 * `maxmemory-policy noeviction` everywhere: a stream is a queue, evicting its entries would lose
 * events (a full Redis refuses XADD instead: monitoring.ts alarms on memory first).
 * The reader's container gets the URL, credentials included, from an SSM SecureString at start
 * (ECS `secrets`), never from its plain environment (`redisUrlParameter`).
 */
import { vpc } from "./network.ts";
import { settings } from "./settings.ts";

const managed = settings.redis.mode === "managed" ? settings.redis : undefined;

export const redis = managed
  ? new sst.aws.Redis("Redis", {
      vpc,
      instance: managed.instance,
      // cluster mode: one primary per shard, keys spread by slot (STREAM_SHARDS ≥ shards)
      cluster: managed.cluster === false ? false : { nodes: managed.cluster.shards },
      parameters: { "maxmemory-policy": "noeviction" },
      transform: {
        // SST builds the replication group without replicas or snapshots: add them per stage
        cluster: (args) => {
          const replicas = managed.replicasPerShard;
          if (managed.cluster === false) {
            args.numCacheClusters = 1 + replicas;
            args.automaticFailoverEnabled = replicas > 0;
          } else {
            args.replicasPerNodeGroup = replicas;
          }
          args.multiAzEnabled = replicas > 0;
          // AWS picks a daily window clear of the maintenance window
          args.snapshotRetentionLimit = managed.snapshotRetentionDays;
        },
      },
    })
  : new sst.Secret("RedisUrl");

/**
 * The whole Redis URL (`rediss://user:password@host:port`, or the `RedisUrl` secret) as an SSM
 * SecureString: ECS injects it into the reader's container at start (`ssm` on the Service), so
 * the task definition — readable by anyone with ecs:DescribeTaskDefinition — never holds it.
 * Producers (`waf ship`) with a network path into the VPC read it the same way (docs/deploy.md).
 */
export const redisUrlParameter = new aws.ssm.Parameter("ReaderRedisUrl", {
  type: "SecureString",
  description: "REDIS_URL of the WAF stream reader (credentials included)",
  value:
    redis instanceof sst.aws.Redis
      ? $interpolate`rediss://${redis.username.apply(encodeURIComponent)}:${(redis.password ?? $output("")).apply(encodeURIComponent)}@${redis.host}:${redis.port}`
      : redis.value,
});
