/**
 * Every CloudWatch alarm of a stage, as plain data: what it watches, its threshold (from the
 * stage's `alarms` section, or a limit the stage sets elsewhere) and how it treats missing data.
 * Pure (no SST import), so `stages.test.ts` checks each alarm against the stage table;
 * `monitoring.ts` creates one `aws.cloudwatch.MetricAlarm` per definition. `N` is how the caller
 * spells a deploy-time name (a Pulumi output in infra, a string in tests).
 *
 * Custom metrics: namespace {@link METRICS_NAMESPACE}, dimensions exactly `service` + `stage`
 * (`environment.ts`). The reader publishes the gauges `ConsumerLag`, `PendingEntries`, `DlqLength`
 * at least once a minute, idle or not, and the counter `DeadLettered`; the scorer `EventsFailed`
 * and `PointsRefused`; the alert function `NotificationsFailed_<channel>`.
 */
import { METRICS_NAMESPACE, SERVICE_NAMES } from "./environment.ts";
import {
  type FunctionSettings,
  NEAR_LIMIT_PERCENT,
  NOTIFICATION_CHANNELS,
  type StageConfig,
} from "./stages.ts";

export type Comparison =
  | "GreaterThanOrEqualToThreshold"
  | "GreaterThanThreshold"
  | "LessThanThreshold"
  | "LessThanOrEqualToThreshold";
/** CloudWatch's `treatMissingData`. */
export type MissingData = "breaching" | "notBreaching" | "ignore" | "missing";
export type Statistic = "Sum" | "Maximum" | "Minimum" | "Average" | "SampleCount" | `p${number}`;

export interface MetricRef<N> {
  namespace: string;
  name: string;
  dimensions: Record<string, N | string>;
  stat: Statistic;
  periodSeconds: number;
}

export interface AlarmDef<N> {
  /** `Scorer`, `Alerter`, `AlerterTick`, `Reader`, `Redis`: the name is `<app>-<stage>-<component>-<check>`. */
  component: string;
  check: string;
  description: string;
  comparison: Comparison;
  threshold: number;
  evaluationPeriods: number;
  datapointsToAlarm: number;
  missing: MissingData;
  /** Exactly one of `metric` and `math`. */
  metric?: MetricRef<N>;
  /** A metric-math expression over `metrics` (ids `m0`, `m1`, …). */
  math?: { expression: string; label: string; metrics: MetricRef<N>[] };
}

/** The deployed resources the alarms watch. */
export interface AlarmTargets<N> {
  scorer: N;
  alerter: N;
  /** The function the one-minute tick invokes (alerter.ts). */
  tick: N;
  /** The SQS queue of alerts Lambda gave up on. */
  failureQueue: N;
  /** Absent under `sst dev`, where the reader runs on the laptop and publishes nothing. */
  reader?: { clusterName: N; serviceName: N };
  /** ElastiCache member clusters (one node each) of a managed Redis; absent for an external one. */
  redisNodes?: N[];
}

/** CloudWatch evaluates at most 10 metrics in one alarm. */
export const MAX_METRICS_PER_ALARM = 10;
/** `DeadLettered` is summed over this window. */
export const DEAD_LETTER_WINDOW_S = 300;
/** `CPUCreditBalance` moves slowly; five-minute points. */
export const CPU_CREDIT_PERIOD_S = 300;

/** Burstable ElastiCache node types, which spend CPU credits. */
export function isBurstable(instance: string): boolean {
  return /^t\d/.test(instance);
}

export function alarmDefinitions<N>(cfg: StageConfig, t: AlarmTargets<N>): AlarmDef<N>[] {
  const a = cfg.alarms;
  const standard = {
    evaluationPeriods: a.evaluationPeriods,
    datapointsToAlarm: a.datapointsToAlarm,
  };
  const once = { evaluationPeriods: 1, datapointsToAlarm: 1 };
  const metric = (
    namespace: string,
    name: string,
    dimensions: Record<string, N | string>,
    stat: Statistic,
    periodSeconds = a.periodSeconds,
  ): MetricRef<N> => ({ namespace, name, dimensions, stat, periodSeconds });
  const lambda = (fn: N, name: string, stat: Statistic) =>
    metric("AWS/Lambda", name, { FunctionName: fn }, stat);
  const custom = (service: string, name: string, stat: Statistic, period?: number) =>
    metric(METRICS_NAMESPACE, name, { service, stage: cfg.stage }, stat, period);

  const defs: AlarmDef<N>[] = [];

  const functionAlarms = (component: string, fn: N, tuning: FunctionSettings) => {
    defs.push({
      component,
      check: "Errors",
      description: `${component} invocations failing (≥ ${a.functionErrors} per ${a.periodSeconds} s): see its logs.`,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: a.functionErrors,
      ...standard,
      missing: "notBreaching",
      metric: lambda(fn, "Errors", "Sum"),
    });
    defs.push({
      component,
      check: "DurationNearTimeout",
      description: `${component} p99 duration ≥ ${NEAR_LIMIT_PERCENT}% of its ${tuning.timeoutSeconds} s timeout.`,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: Math.round((tuning.timeoutSeconds * 1000 * NEAR_LIMIT_PERCENT) / 100),
      ...standard,
      missing: "notBreaching",
      metric: lambda(fn, "Duration", "p99"),
    });
    defs.push({
      component,
      check: "ConcurrencyNearReservation",
      description: `${component} concurrency ≥ ${NEAR_LIMIT_PERCENT}% of its reservation (${tuning.reservedConcurrency}).`,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: Math.ceil((tuning.reservedConcurrency * NEAR_LIMIT_PERCENT) / 100),
      ...standard,
      missing: "notBreaching",
      metric: lambda(fn, "ConcurrentExecutions", "Maximum"),
    });
  };

  // --- Scorer: invoked synchronously by the reader, so a throttle fails a batch.
  functionAlarms("Scorer", t.scorer, cfg.scorer);
  defs.push({
    component: "Scorer",
    check: "Throttles",
    description:
      "Scorer throttled: its reservation no longer covers the readers' peak in flight (infra/stages.ts).",
    comparison: "GreaterThanThreshold",
    threshold: 0,
    ...once,
    missing: "notBreaching",
    metric: lambda(t.scorer, "Throttles", "Sum"),
  });
  defs.push({
    component: "Scorer",
    check: "EventsFailed",
    description: `${a.eventsFailed}+ records a minute failed in the scorer (InfluxDB or Redis unavailable) and wait for a retry.`,
    comparison: "GreaterThanOrEqualToThreshold",
    threshold: a.eventsFailed,
    ...standard,
    missing: "notBreaching",
    metric: custom(SERVICE_NAMES.scorer, "EventsFailed", "Sum"),
  });
  defs.push({
    component: "Scorer",
    check: "PointsRefused",
    description:
      "InfluxDB refused points for good (malformed, outside retention, or a tag's value cap reached: " +
      "INFLUX_IP_AS=field bounds it). Their alerts were sent; the records are in the DLQ: `waf dlq list`.",
    comparison: "GreaterThanThreshold",
    threshold: 0,
    ...once,
    missing: "notBreaching",
    metric: custom(SERVICE_NAMES.scorer, "PointsRefused", "Sum"),
  });

  // --- Alerter: invoked asynchronously; Lambda queues, retries, then hands over to the failure
  // queue. A throttle only delays (AsyncEventAge says by how much); a drop is what matters.
  functionAlarms("Alerter", t.alerter, cfg.alerter);
  defs.push({
    component: "Alerter",
    check: "AsyncEventAge",
    description:
      `Alerts wait ${a.alertEventAgeSeconds}+ s in Lambda's queue before the alert function takes ` +
      `them (throttled or failing); at ${cfg.alerter.maxEventAgeSeconds} s they expire to the failure queue.`,
    comparison: "GreaterThanOrEqualToThreshold",
    threshold: a.alertEventAgeSeconds * 1000,
    ...standard,
    missing: "notBreaching",
    metric: lambda(t.alerter, "AsyncEventAge", "Maximum"),
  });
  defs.push({
    component: "Alerter",
    check: "AsyncEventsDropped",
    description:
      "Lambda gave up on alerts (retries exhausted or too old): they are in the AlertFailures queue, " +
      "unless DestinationDeliveryFailures fired too. Redrive them (docs/deploy.md).",
    comparison: "GreaterThanThreshold",
    threshold: 0,
    ...once,
    missing: "notBreaching",
    metric: lambda(t.alerter, "AsyncEventsDropped", "Sum"),
  });
  defs.push({
    component: "Alerter",
    check: "FailedAlerts",
    description:
      "Alerts Lambda gave up on are waiting in the AlertFailures queue: redrive them (docs/deploy.md).",
    comparison: "GreaterThanThreshold",
    threshold: 0,
    ...once,
    // SQS stops publishing for a queue idle for 6 hours, even one still holding messages: keep
    // the last state rather than clear an alarm whose messages nobody redrove.
    missing: "ignore",
    metric: metric(
      "AWS/SQS",
      "ApproximateNumberOfMessagesVisible",
      { QueueName: t.failureQueue },
      "Maximum",
    ),
  });
  defs.push({
    component: "Alerter",
    check: "DestinationDeliveryFailures",
    description: "Failed alerts could not even be written to the AlertFailures queue.",
    comparison: "GreaterThanThreshold",
    threshold: 0,
    ...once,
    missing: "notBreaching",
    metric: lambda(t.alerter, "DestinationDeliveryFailures", "Sum"),
  });
  for (const channel of NOTIFICATION_CHANNELS) {
    defs.push({
      component: "Alerter",
      check: `NotificationsFailed_${channel}`,
      description: `${a.notificationsFailed}+ ${channel} notifications a minute failed after their retries: check the channel's secret and status.`,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: a.notificationsFailed,
      ...standard,
      // a channel that is off, or had nothing to send, publishes nothing
      missing: "notBreaching",
      metric: custom(SERVICE_NAMES.alerter, `NotificationsFailed_${channel}`, "Sum"),
    });
  }
  // The tick (`{"alerts": []}` every minute) runs in a function of its own without a failure
  // destination: its failures delay throttle summaries, they never fill the AlertFailures queue.
  defs.push({
    component: "AlerterTick",
    check: "Errors",
    description:
      "The one-minute tick fails: throttle summaries wait for the next alert. Alerts themselves are unaffected.",
    comparison: "GreaterThanOrEqualToThreshold",
    threshold: 1,
    ...standard,
    missing: "notBreaching",
    metric: lambda(t.tick, "Errors", "Sum"),
  });

  // --- Reader (not under `sst dev`).
  if (t.reader) {
    const reader = (name: string, stat: Statistic, period?: number) =>
      custom(SERVICE_NAMES.reader, name, stat, period);
    defs.push({
      component: "Reader",
      check: "ConsumerLag",
      description: `Consumer group ${a.consumerLag}+ entries behind the stream, beyond what autoscaling absorbs.`,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: a.consumerLag,
      ...standard,
      missing: "notBreaching",
      metric: reader("ConsumerLag", "Maximum"),
    });
    defs.push({
      component: "Reader",
      check: "PendingEntries",
      description: `${a.pendingEntries}+ entries delivered but not acknowledged: work is stuck.`,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: a.pendingEntries,
      ...standard,
      missing: "notBreaching",
      metric: reader("PendingEntries", "Maximum"),
    });
    defs.push({
      component: "Reader",
      check: "DeadLettered",
      description: `${a.deadLettered}+ records dead-lettered within ${DEAD_LETTER_WINDOW_S / 60} minutes: \`waf dlq list\`.`,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: a.deadLettered,
      ...once,
      missing: "notBreaching",
      metric: reader("DeadLettered", "Sum", DEAD_LETTER_WINDOW_S),
    });
    defs.push({
      component: "Reader",
      check: "Heartbeat",
      description: "The reader stopped publishing its gauges: no task is reading, or it is wedged.",
      comparison: "LessThanThreshold",
      threshold: 1,
      ...standard,
      missing: "breaching",
      metric: reader("ConsumerLag", "SampleCount"),
    });
    defs.push({
      component: "Reader",
      check: "RunningTasks",
      description: `Fewer than ${cfg.reader.minTasks} reader task(s) running.`,
      comparison: "LessThanThreshold",
      threshold: cfg.reader.minTasks,
      ...standard,
      missing: "breaching",
      metric: metric(
        "ECS/ContainerInsights",
        "RunningTaskCount",
        { ClusterName: t.reader.clusterName, ServiceName: t.reader.serviceName },
        "Minimum",
      ),
    });
  }

  // --- ElastiCache (managed Redis): per node, worst node wins.
  if (cfg.redis.mode === "managed" && t.redisNodes && t.redisNodes.length > 0) {
    const nodes = t.redisNodes;
    const groups: N[][] = [];
    for (let i = 0; i < nodes.length; i += MAX_METRICS_PER_ALARM) {
      groups.push(nodes.slice(i, i + MAX_METRICS_PER_ALARM));
    }
    const overNodes = (
      check: string,
      name: string,
      stat: Statistic,
      reduce: "MAX" | "MIN",
      rest: Omit<AlarmDef<N>, "component" | "check" | "metric" | "math">,
      period = a.periodSeconds,
    ) => {
      groups.forEach((group, g) => {
        const perNode = group.map((id) =>
          metric("AWS/ElastiCache", name, { CacheClusterId: id }, stat, period),
        );
        const [only] = perNode;
        defs.push({
          component: "Redis",
          check: groups.length === 1 ? check : `${check}${g + 1}`,
          ...rest,
          ...(perNode.length === 1 && only
            ? { metric: only }
            : {
                math: {
                  expression: `${reduce}([${perNode.map((_, i) => `m${i}`).join(",")}])`,
                  label: `${name} (${reduce === "MAX" ? "highest" : "lowest"} node)`,
                  metrics: perNode,
                },
              }),
        });
      });
    };
    overNodes("Memory", "DatabaseMemoryUsagePercentage", "Maximum", "MAX", {
      description:
        `A Redis node's memory is ${a.redisMemoryPercent}%+ used. Its maxmemory-policy is noeviction: ` +
        "when full, producers' XADDs are refused. Read the backlog down, lower SHIP_MAXLEN / DLQ_MAXLEN, or add shards.",
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: a.redisMemoryPercent,
      ...standard,
      missing: "notBreaching",
    });
    overNodes("EngineCpu", "EngineCPUUtilization", "Maximum", "MAX", {
      description: `A Redis node's engine thread is ${a.redisEngineCpuPercent}%+ busy: add shards (and STREAM_SHARDS) or a larger node.`,
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: a.redisEngineCpuPercent,
      ...standard,
      missing: "notBreaching",
    });
    if (isBurstable(cfg.redis.instance)) {
      overNodes(
        "CpuCredits",
        "CPUCreditBalance",
        "Minimum",
        "MIN",
        {
          description: `A burstable Redis node is down to ${a.redisCpuCredits} CPU credits: it will be throttled to its baseline. Use a larger or non-burstable node.`,
          comparison: "LessThanOrEqualToThreshold",
          threshold: a.redisCpuCredits,
          evaluationPeriods: 2,
          datapointsToAlarm: 2,
          missing: "notBreaching",
        },
        CPU_CREDIT_PERIOD_S,
      );
    }
  }

  return defs;
}
