/**
 * Owns: the stream reader ("Reader", reference §5): a Fargate service on its own ECS cluster that
 * reads the Redis Stream (every shard) as a consumer group and invokes the Scorer with batches,
 * and its autoscaling on the backlog (scaling.ts: `ConsumerLag` per running task, step policies).
 * Least privilege: its task role may invoke the Scorer (`lambda:InvokeFunction` on the Scorer's
 * ARN, granted by linking it) and nothing else of ours. Its Redis URL (credentials included)
 * comes from an SSM SecureString through ECS `secrets`, never from plain environment variables.
 * `sst dev` runs the reader on the laptop instead (`dev.command`): the Service then has no ECS
 * resources, so everything that reads `reader.nodes` is skipped under `$dev`.
 * Differs by stage: task size, task count and backlog scaling, rolling-deploy headroom, whether
 * a deploy waits for the service to be stable, stop timeout (SIGTERM → drain in-flight batches →
 * exit before SIGKILL), batch tuning.
 */
import { readerEnvironment } from "./environment.ts";
import { influx } from "./influx.ts";
import { vpc } from "./network.ts";
import { redis, redisUrlParameter } from "./redis.ts";
import { lagPerTaskQueries, readerScaling, type ScalingAlarmPlan } from "./scaling.ts";
import { scorer } from "./scorer.ts";
import { namePrefix, settings } from "./settings.ts";

export const cluster = new sst.aws.Cluster("Cluster", {
  vpc,
  // Container Insights publishes RunningTaskCount: the scaling metric and the task-health alarm
  transform: { cluster: { settings: [{ name: "containerInsights", value: "enabled" }] } },
});

const { reader: tuning } = settings;
const healthUrl = `http://127.0.0.1:${tuning.healthPort}/healthz`;
const plan = readerScaling(settings);

export const reader = new sst.aws.Service("Reader", {
  cluster,
  image: { context: ".", dockerfile: "Dockerfile", target: "reader" },
  architecture: "arm64",
  cpu: tuning.cpu,
  memory: tuning.memory,
  // the range only: the policies below scale on the backlog, SST's CPU/memory ones are off
  scaling: {
    min: plan.minTasks,
    max: plan.maxTasks,
    cpuUtilization: false,
    memoryUtilization: false,
  },
  // staging/production: `sst deploy` waits for a steady service, so a reader that crash-loops
  // trips ECS's circuit breaker and fails the deploy instead of rolling back unnoticed
  wait: tuning.waitForDeploy,
  // `sst dev`: the same entry point on the laptop, Redis through the linked resource and the
  // VPC tunnel (no ECS secrets there)
  dev: { command: "npx tsx functions/reader/main.ts", directory: "." },
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
  // Invoking the Scorer is the only link on AWS; Redis's URL and credentials arrive as ECS
  // secrets. Under `sst dev` there is no task definition to leak them from: link Redis too.
  link: $dev ? [scorer, redis] : [scorer],
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

/** The ECS names the alarms and the dashboard read; undefined under `sst dev`. */
export const readerService = $dev
  ? undefined
  : { clusterName: cluster.nodes.cluster.name, serviceName: reader.nodes.service.name };

/** One step policy and the alarm that drives it (not a paging alarm: it notifies no topic). */
function stepPolicy(
  direction: "ScaleOut" | "ScaleIn",
  step: ScalingAlarmPlan,
  service: NonNullable<typeof readerService>,
) {
  const target = reader.nodes.autoScalingTarget;
  const policy = new aws.appautoscaling.Policy(`Reader${direction}Policy`, {
    name: `${namePrefix}-Reader-${direction}`,
    policyType: "StepScaling",
    serviceNamespace: target.serviceNamespace,
    scalableDimension: target.scalableDimension,
    resourceId: target.resourceId,
    stepScalingPolicyConfiguration: {
      adjustmentType: step.adjustmentType,
      cooldown: step.cooldownSeconds,
      metricAggregationType: "Maximum",
      minAdjustmentMagnitude: step.minAdjustmentMagnitude,
      stepAdjustments: step.steps.map((s) => ({
        metricIntervalLowerBound: s.lowerBound === undefined ? undefined : String(s.lowerBound),
        metricIntervalUpperBound: s.upperBound === undefined ? undefined : String(s.upperBound),
        scalingAdjustment: s.adjustment,
      })),
    },
  });
  return new aws.cloudwatch.MetricAlarm(`Reader${direction}Alarm`, {
    name: `${namePrefix}-Reader-${direction}`,
    alarmDescription: `Autoscaling (not paging): reader consumer lag per task ${
      direction === "ScaleOut" ? "≥" : "<"
    } ${step.threshold} for ${step.datapointsToAlarm} min → ${direction === "ScaleOut" ? "add" : "remove"} tasks.`,
    comparisonOperator: step.comparison,
    threshold: step.threshold,
    evaluationPeriods: step.evaluationPeriods,
    datapointsToAlarm: step.datapointsToAlarm,
    // no data (no task yet, Container Insights late): no scaling either way
    treatMissingData: "notBreaching",
    metricQueries: lagPerTaskQueries(settings, service),
    alarmActions: [policy.arn],
  });
}

export const readerScalingAlarms =
  readerService && plan.enabled
    ? [
        stepPolicy("ScaleOut", plan.scaleOut, readerService),
        stepPolicy("ScaleIn", plan.scaleIn, readerService),
      ]
    : [];
