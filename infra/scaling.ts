/**
 * How the reader service scales: on its backlog, not its CPU. Pure (no SST import), so
 * `stages.test.ts` checks the plan; `reader.ts` turns it into two Application Auto Scaling step
 * policies and the two CloudWatch alarms that trigger them.
 *
 * The signal is the consumer group's lag per running task: `ConsumerLag` (the reader's EMF gauge,
 * the same total over every shard from each task, so `Maximum` is that total) divided by the
 * service's `RunningTaskCount` (Container Insights). A reader's CPU stays low while it waits on
 * in-flight scorer invocations, so CPU never says the fleet is too small; the backlog does.
 *
 * Step scaling rather than target tracking: with enough tasks the lag is ~0, which target
 * tracking reads as "far below target" and answers by cutting the fleet in proportion (to the
 * minimum at once), only to scale out again minutes later. Here scale-out adds tasks in
 * proportion to how far the lag per task is above `scaleOutLagPerTask`, and scale-in removes one
 * task at a time after the lag per task stayed below `scaleInLagPerTask` for
 * `scaleInAfterMinutes`, with at least 300 s between two removals.
 */
import { METRICS_NAMESPACE, SERVICE_NAMES } from "./environment.ts";
import type { StageConfig } from "./stages.ts";

/** One step of a step-scaling policy, bounds relative to the alarm threshold (AWS's convention). */
export interface ScalingStep {
  /** Absent: no lower bound. */
  lowerBound?: number;
  /** Absent: no upper bound. */
  upperBound?: number;
  adjustment: number;
}

export interface ScalingAlarmPlan {
  /** Alarm on the lag per task: `GreaterThanOrEqualToThreshold` (out) or `LessThanThreshold` (in). */
  comparison: "GreaterThanOrEqualToThreshold" | "LessThanThreshold";
  threshold: number;
  evaluationPeriods: number;
  datapointsToAlarm: number;
  adjustmentType: "PercentChangeInCapacity" | "ChangeInCapacity";
  /** PercentChangeInCapacity: never fewer than this many tasks per step. */
  minAdjustmentMagnitude?: number;
  cooldownSeconds: number;
  steps: ScalingStep[];
}

export interface ReaderScalingPlan {
  minTasks: number;
  maxTasks: number;
  /** Policies exist only when the service can actually change size. */
  enabled: boolean;
  scaleOut: ScalingAlarmPlan;
  scaleIn: ScalingAlarmPlan;
}

/** Seconds per datapoint of the lag-per-task metric: the reader publishes its gauges every minute. */
export const SCALING_PERIOD_S = 60;

/** The metric math the scaling alarms watch; `N` is how the infra spells a resource name. */
export interface LagPerTaskQuery<N> {
  id: string;
  expression?: string;
  label?: string;
  returnData: boolean;
  metric?: {
    namespace: string;
    metricName: string;
    dimensions: Record<string, N | string>;
    period: number;
    stat: string;
  };
}

export function readerScaling(cfg: StageConfig): ReaderScalingPlan {
  const { minTasks, maxTasks, scaling: s } = cfg.reader;
  const out = s.scaleOutLagPerTask;
  return {
    minTasks,
    maxTasks,
    enabled: maxTasks > minTasks,
    scaleOut: {
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: out,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      adjustmentType: "PercentChangeInCapacity",
      minAdjustmentMagnitude: 1,
      cooldownSeconds: s.scaleOutCooldownSeconds,
      // lag per task in [1×, 2×) the threshold: +25 %; [2×, 4×): +50 %; 4× and more: double
      steps: [
        { lowerBound: 0, upperBound: out, adjustment: 25 },
        { lowerBound: out, upperBound: 3 * out, adjustment: 50 },
        { lowerBound: 3 * out, adjustment: 100 },
      ],
    },
    scaleIn: {
      comparison: "LessThanThreshold",
      threshold: s.scaleInLagPerTask,
      evaluationPeriods: s.scaleInAfterMinutes,
      datapointsToAlarm: s.scaleInAfterMinutes,
      adjustmentType: "ChangeInCapacity",
      cooldownSeconds: s.scaleInCooldownSeconds,
      // the metric is below the threshold: the interval ends at 0 (relative), one task at a time
      steps: [{ upperBound: 0, adjustment: -1 }],
    },
  };
}

/**
 * `ConsumerLag` / `RunningTaskCount` for one stage's reader service. With no task running the
 * division has no datapoint: the scaling alarms treat that as not breaching (no step either way)
 * and the service's minimum brings a task back.
 */
export function lagPerTaskQueries<N>(
  cfg: StageConfig,
  service: { clusterName: N; serviceName: N },
): LagPerTaskQuery<N>[] {
  return [
    {
      id: "lag",
      returnData: false,
      metric: {
        namespace: METRICS_NAMESPACE,
        metricName: "ConsumerLag",
        dimensions: { service: SERVICE_NAMES.reader, stage: cfg.stage },
        period: SCALING_PERIOD_S,
        stat: "Maximum",
      },
    },
    {
      id: "tasks",
      returnData: false,
      metric: {
        namespace: "ECS/ContainerInsights",
        metricName: "RunningTaskCount",
        dimensions: { ClusterName: service.clusterName, ServiceName: service.serviceName },
        period: SCALING_PERIOD_S,
        stat: "Average",
      },
    },
    {
      id: "lagPerTask",
      expression: "lag / tasks",
      label: "consumer lag per task",
      returnData: true,
    },
  ];
}
