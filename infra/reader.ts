/**
 * Owns: the stream reader ("Reader", reference §5): a Fargate service on its own ECS cluster that
 * reads the Redis Stream as a consumer group and invokes the Scorer with batches.
 * Least privilege: its task role may invoke the Scorer (`lambda:InvokeFunction` on the Scorer's
 * ARN, granted by linking it) and nothing else of ours. Its Redis URL (credentials included)
 * comes from an SSM SecureString through ECS `secrets`, never from plain environment variables.
 * Differs by stage: task size, task count and CPU autoscaling, rolling-deploy headroom,
 * stop timeout (SIGTERM → drain in-flight batches → exit before SIGKILL), batch tuning.
 */
import { readerEnvironment } from "./environment.ts";
import { influx } from "./influx.ts";
import { vpc } from "./network.ts";
import { redisUrlParameter } from "./redis.ts";
import { scorer } from "./scorer.ts";
import { settings } from "./settings.ts";

export const cluster = new sst.aws.Cluster("Cluster", {
  vpc,
  // Container Insights publishes RunningTaskCount, which the task-health alarm watches
  transform: { cluster: { settings: [{ name: "containerInsights", value: "enabled" }] } },
});

const { reader: tuning } = settings;
const healthUrl = `http://127.0.0.1:${tuning.healthPort}/healthz`;

export const reader = new sst.aws.Service("Reader", {
  cluster,
  image: { context: ".", dockerfile: "functions/reader/Dockerfile" },
  architecture: "arm64",
  cpu: tuning.cpu,
  memory: tuning.memory,
  scaling: {
    min: tuning.minTasks,
    max: tuning.maxTasks,
    cpuUtilization: tuning.cpuTargetPercent,
    memoryUtilization: false,
  },
  // ECS replaces a task whose GET /healthz fails: the process's own health (the read loop runs),
  // not Redis's or InfluxDB's, which a new task could not fix; node is in the image, curl is not
  health: {
    command: [
      "CMD",
      "node",
      "-e",
      `fetch(${JSON.stringify(healthUrl)},{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`,
    ],
    startPeriod: "30 seconds",
    interval: "15 seconds",
    timeout: "5 seconds",
    retries: 3,
  },
  // Invoking the Scorer is the only link; Redis's URL and credentials arrive as ECS secrets.
  link: [scorer],
  ssm: { REDIS_URL: redisUrlParameter.arn },
  logging: { retention: settings.logRetention },
  environment: {
    ...readerEnvironment(settings),
    SCORER_FUNCTION: scorer.name,
    // reported by GET /healthz (reachability only: the reader never writes to InfluxDB)
    INFLUXDB_URL: influx.url,
  },
  transform: {
    service: {
      // old tasks drain while new ones read: stages.ts counts this peak against the reservation
      deploymentMaximumPercent: tuning.deploymentMaxPercent,
      deploymentMinimumHealthyPercent: 100,
    },
    taskDefinition: (args) => {
      // ECS's stopTimeout (SIGTERM → SIGKILL) is not a Service argument: set it per container
      args.containerDefinitions = $jsonStringify(
        $jsonParse(args.containerDefinitions).apply((containers: Array<Record<string, unknown>>) =>
          containers.map((container) => ({
            ...container,
            stopTimeout: tuning.stopTimeoutSeconds,
          })),
        ),
      );
    },
  },
});
