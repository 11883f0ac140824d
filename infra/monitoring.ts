/**
 * Owns: the stage's alarm topic (SNS, optional email subscription), every CloudWatch alarm, and
 * the stage's dashboard. Names: `<app>-<stage>-alarms` (topic), `<app>-<stage>-<Component>-<Check>`
 * (alarms), `<app>-<stage>` (dashboard), e.g. `waf-event-processor-production-Scorer-Throttles`.
 * Differs by stage: thresholds (`stages.ts` `alarms`), the reservations and timeouts the
 * near-limit alarms are computed from, the email.
 *
 * Custom metrics: namespace `WafEventProcessor`, dimensions exactly `service` + `stage`
 * (see `environment.ts`). The reader publishes the gauges `ConsumerLag`, `PendingEntries`,
 * `DlqLength` at least once a minute, idle or not (the heartbeat alarm relies on it), and the
 * counters `EventsProcessed`, `EventsRejected`, `AlertsQueued`, `BatchLatencyMs`; the severity
 * counters `SeverityCritical|High|Medium|Low` may come from the reader or the scorer (the
 * dashboard searches by stage).
 */
import { alerter, alertFailures } from "./alerter.ts";
import { METRICS_NAMESPACE, SERVICE_NAMES } from "./environment.ts";
import { cluster, reader } from "./reader.ts";
import { scorer } from "./scorer.ts";
import { namePrefix, settings } from "./settings.ts";
import { type FunctionSettings, NEAR_LIMIT_PERCENT, peakScorerInvocations } from "./stages.ts";

export const alarmTopic = new aws.sns.Topic("Alarms", { name: `${namePrefix}-alarms` });

if (settings.alarms.email) {
  new aws.sns.TopicSubscription("AlarmsEmail", {
    topic: alarmTopic.arn,
    protocol: "email",
    endpoint: settings.alarms.email,
  });
}

type Comparison =
  | "GreaterThanOrEqualToThreshold"
  | "GreaterThanThreshold"
  | "LessThanThreshold"
  | "LessThanOrEqualToThreshold";
type MissingData = "breaching" | "notBreaching" | "ignore" | "missing";

interface AlarmSpec {
  description: string;
  comparison: Comparison;
  threshold: number;
  evaluationPeriods?: number;
  datapointsToAlarm?: number;
  missing?: MissingData;
  metric?: {
    namespace: string;
    name: string;
    dimensions: Record<string, $util.Input<string>>;
    statistic?: "Sum" | "Maximum" | "Minimum" | "Average" | "SampleCount";
    percentile?: `p${number}`;
    periodSeconds?: number;
  };
  queries?: aws.types.input.cloudwatch.MetricAlarmMetricQuery[];
}

const { alarms: thresholds } = settings;
const created: aws.cloudwatch.MetricAlarm[] = [];

/** One alarm, named `<app>-<stage>-<component>-<check>`, notifying the topic on ALARM and OK. */
function alarm(component: string, check: string, spec: AlarmSpec) {
  const { metric } = spec;
  const resource = new aws.cloudwatch.MetricAlarm(`${component}${check}Alarm`, {
    name: `${namePrefix}-${component}-${check}`,
    alarmDescription: spec.description,
    comparisonOperator: spec.comparison,
    threshold: spec.threshold,
    evaluationPeriods: spec.evaluationPeriods ?? thresholds.evaluationPeriods,
    datapointsToAlarm: spec.datapointsToAlarm ?? thresholds.datapointsToAlarm,
    treatMissingData: spec.missing ?? "notBreaching",
    alarmActions: [alarmTopic.arn],
    okActions: [alarmTopic.arn],
    ...(metric
      ? {
          namespace: metric.namespace,
          metricName: metric.name,
          dimensions: metric.dimensions,
          period: metric.periodSeconds ?? thresholds.periodSeconds,
          ...(metric.percentile
            ? { extendedStatistic: metric.percentile }
            : { statistic: metric.statistic ?? "Sum" }),
        }
      : { metricQueries: spec.queries }),
  });
  created.push(resource);
  return resource;
}

/** Errors, throttles, duration near the timeout, concurrency near the reservation. */
function functionAlarms(component: string, fn: sst.aws.Function, tuning: FunctionSettings) {
  const dimensions = { FunctionName: fn.name };
  const lambda = (name: string, extra: Partial<NonNullable<AlarmSpec["metric"]>> = {}) => ({
    namespace: "AWS/Lambda",
    name,
    dimensions,
    ...extra,
  });
  alarm(component, "Errors", {
    description: `${component} invocations failing (≥ ${thresholds.functionErrors} per ${thresholds.periodSeconds} s): see its logs.`,
    comparison: "GreaterThanOrEqualToThreshold",
    threshold: thresholds.functionErrors,
    metric: lambda("Errors"),
  });
  alarm(component, "Throttles", {
    description: `${component} throttled: its reservation no longer covers its callers (infra/stages.ts).`,
    comparison: "GreaterThanThreshold",
    threshold: 0,
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    metric: lambda("Throttles"),
  });
  const timeoutMs = tuning.timeoutSeconds * 1000;
  alarm(component, "DurationNearTimeout", {
    description: `${component} p99 duration ≥ ${NEAR_LIMIT_PERCENT}% of its ${tuning.timeoutSeconds} s timeout.`,
    comparison: "GreaterThanOrEqualToThreshold",
    threshold: Math.round((timeoutMs * NEAR_LIMIT_PERCENT) / 100),
    metric: lambda("Duration", { percentile: "p99" }),
  });
  alarm(component, "ConcurrencyNearReservation", {
    description: `${component} concurrency ≥ ${NEAR_LIMIT_PERCENT}% of its reservation (${tuning.reservedConcurrency}).`,
    comparison: "GreaterThanOrEqualToThreshold",
    threshold: Math.ceil((tuning.reservedConcurrency * NEAR_LIMIT_PERCENT) / 100),
    metric: lambda("ConcurrentExecutions", { statistic: "Maximum" }),
  });
}

functionAlarms("Scorer", scorer, settings.scorer);
functionAlarms("Alerter", alerter, settings.alerter);

alarm("Alerter", "FailedAlerts", {
  description:
    "Alerts Lambda gave up on are waiting in the AlertFailures queue: redrive them (docs/deploy.md).",
  comparison: "GreaterThanThreshold",
  threshold: 0,
  evaluationPeriods: 1,
  datapointsToAlarm: 1,
  metric: {
    namespace: "AWS/SQS",
    name: "ApproximateNumberOfMessagesVisible",
    dimensions: { QueueName: alertFailures.nodes.queue.name },
    statistic: "Maximum",
  },
});
alarm("Alerter", "DestinationDeliveryFailures", {
  description: "Failed alerts could not even be written to the AlertFailures queue.",
  comparison: "GreaterThanThreshold",
  threshold: 0,
  evaluationPeriods: 1,
  datapointsToAlarm: 1,
  metric: {
    namespace: "AWS/Lambda",
    name: "DestinationDeliveryFailures",
    dimensions: { FunctionName: alerter.name },
  },
});

const readerDimensions = { service: SERVICE_NAMES.reader, stage: settings.stage };
const custom = (name: string, statistic: "Maximum" | "SampleCount" = "Maximum") => ({
  namespace: METRICS_NAMESPACE,
  name,
  dimensions: readerDimensions,
  statistic,
});

alarm("Reader", "ConsumerLag", {
  description: `Consumer group ${thresholds.consumerLag}+ entries behind the stream.`,
  comparison: "GreaterThanOrEqualToThreshold",
  threshold: thresholds.consumerLag,
  metric: custom("ConsumerLag"),
});
alarm("Reader", "PendingEntries", {
  description: `${thresholds.pendingEntries}+ entries delivered but not acknowledged: work is stuck.`,
  comparison: "GreaterThanOrEqualToThreshold",
  threshold: thresholds.pendingEntries,
  metric: custom("PendingEntries"),
});
alarm("Reader", "DlqGrowth", {
  description: `${thresholds.dlqGrowth}+ entries dead-lettered within 5 minutes: \`waf dlq list\`.`,
  comparison: "GreaterThanOrEqualToThreshold",
  threshold: thresholds.dlqGrowth,
  evaluationPeriods: 1,
  datapointsToAlarm: 1,
  queries: [
    {
      id: "dlq",
      metric: {
        namespace: METRICS_NAMESPACE,
        metricName: "DlqLength",
        dimensions: readerDimensions,
        period: 300,
        stat: "Maximum",
      },
      returnData: false,
    },
    { id: "growth", expression: "DIFF(dlq)", label: "DLQ entries added", returnData: true },
  ],
});
alarm("Reader", "Heartbeat", {
  description: "The reader stopped publishing its gauges: no task is reading, or it is wedged.",
  comparison: "LessThanThreshold",
  threshold: 1,
  missing: "breaching",
  metric: custom("ConsumerLag", "SampleCount"),
});
alarm("Reader", "RunningTasks", {
  description: `Fewer than ${settings.reader.minTasks} reader task(s) running.`,
  comparison: "LessThanThreshold",
  threshold: settings.reader.minTasks,
  missing: "breaching",
  metric: {
    namespace: "ECS/ContainerInsights",
    name: "RunningTaskCount",
    dimensions: { ClusterName: cluster.nodes.cluster.name, ServiceName: reader.nodes.service.name },
    statistic: "Minimum",
  },
});

alarm("Scorer", "PointsRefused", {
  description:
    "InfluxDB refused points for good (malformed, outside retention, or a tag's value cap reached: " +
    "INFLUX_IP_AS=field bounds it). Their alerts were sent; the records are in the DLQ: `waf dlq list`.",
  comparison: "GreaterThanThreshold",
  threshold: 0,
  evaluationPeriods: 1,
  datapointsToAlarm: 1,
  missing: "notBreaching",
  metric: {
    namespace: METRICS_NAMESPACE,
    name: "PointsRefused",
    dimensions: { service: SERVICE_NAMES.scorer, stage: settings.stage },
    statistic: "Sum",
  },
});

const region = aws.getRegionOutput().region;
const period = thresholds.periodSeconds;
let searches = 0;
const search = (metric: string, stat: string, label: string) => ({
  id: `s${++searches}`,
  expression: `SEARCH('{${METRICS_NAMESPACE},service,stage} stage="${settings.stage}" MetricName="${metric}"', '${stat}', ${period})`,
  label,
});
type Widget = { title: string; metrics?: unknown[]; stacked?: boolean; annotations?: unknown };
const row = (y: number, widgets: Widget[]) =>
  widgets.map((w, i) => ({
    type: "metric",
    x: i * (24 / widgets.length),
    y,
    width: 24 / widgets.length,
    height: 6,
    properties: {
      title: w.title,
      region,
      period,
      view: "timeSeries",
      stacked: w.stacked ?? false,
      metrics: w.metrics,
      ...(w.annotations ? { annotations: w.annotations } : {}),
    },
  }));
const fnMetric = (fn: sst.aws.Function, metric: string, stat: string, label: string) => [
  "AWS/Lambda",
  metric,
  "FunctionName",
  fn.name,
  { stat, label },
];
const functionRow = (y: number, name: string, fn: sst.aws.Function, tuning: FunctionSettings) =>
  row(y, [
    {
      title: `${name}: invocations, errors, throttles`,
      metrics: [
        fnMetric(fn, "Invocations", "Sum", "invocations"),
        fnMetric(fn, "Errors", "Sum", "errors"),
        fnMetric(fn, "Throttles", "Sum", "throttles"),
      ],
    },
    {
      title: `${name}: duration (timeout ${tuning.timeoutSeconds} s)`,
      metrics: [
        fnMetric(fn, "Duration", "p50", "p50"),
        fnMetric(fn, "Duration", "p99", "p99"),
        fnMetric(fn, "Duration", "Maximum", "max"),
      ],
      annotations: {
        horizontal: [{ label: "timeout", value: tuning.timeoutSeconds * 1000 }],
      },
    },
    {
      title: `${name}: concurrency (reserved ${tuning.reservedConcurrency})`,
      metrics: [fnMetric(fn, "ConcurrentExecutions", "Maximum", "concurrent")],
      annotations: {
        horizontal: [
          { label: "reserved", value: tuning.reservedConcurrency },
          ...(name === "Scorer"
            ? [{ label: "readers' peak in flight", value: peakScorerInvocations(settings) }]
            : []),
        ],
      },
    },
  ]);

/** Alarm names, for the outputs and the runbook. */
export const alarmNames = created.map((a) => a.name);

export const dashboard = new aws.cloudwatch.Dashboard("Dashboard", {
  dashboardName: namePrefix,
  dashboardBody: $jsonStringify({
    widgets: [
      ...row(0, [
        {
          title: "Events processed / rejected / alerts queued",
          metrics: [
            [search("EventsProcessed", "Sum", "processed")],
            [search("EventsRejected", "Sum", "rejected")],
            [search("AlertsQueued", "Sum", "alerts queued")],
          ],
        },
        {
          title: "Severity distribution",
          stacked: true,
          metrics: [
            [search("SeverityCritical", "Sum", "critical")],
            [search("SeverityHigh", "Sum", "high")],
            [search("SeverityMedium", "Sum", "medium")],
            [search("SeverityLow", "Sum", "low")],
          ],
        },
        {
          title: "Batch latency (ms)",
          metrics: [
            [search("BatchLatencyMs", "p50", "p50")],
            [search("BatchLatencyMs", "p99", "p99")],
          ],
        },
      ]),
      ...row(6, [
        {
          title: "Consumer lag / pending entries",
          metrics: [
            [search("ConsumerLag", "Maximum", "lag")],
            [search("PendingEntries", "Maximum", "pending")],
          ],
          annotations: {
            horizontal: [
              { label: "lag alarm", value: thresholds.consumerLag },
              { label: "pending alarm", value: thresholds.pendingEntries },
            ],
          },
        },
        {
          title: "Dead-letter stream length / failed alerts",
          metrics: [
            [search("DlqLength", "Maximum", "DLQ length")],
            [
              "AWS/SQS",
              "ApproximateNumberOfMessagesVisible",
              "QueueName",
              alertFailures.nodes.queue.name,
              { stat: "Maximum", label: "failed alerts" },
            ],
          ],
        },
        {
          title: "Reader tasks",
          metrics: [
            [
              "ECS/ContainerInsights",
              "RunningTaskCount",
              "ClusterName",
              cluster.nodes.cluster.name,
              "ServiceName",
              reader.nodes.service.name,
              { stat: "Minimum", label: "running" },
            ],
            [
              "AWS/ECS",
              "CPUUtilization",
              "ClusterName",
              cluster.nodes.cluster.name,
              "ServiceName",
              reader.nodes.service.name,
              { stat: "Average", label: "CPU %", yAxis: "right" },
            ],
          ],
          annotations: {
            horizontal: [
              { label: "min tasks", value: settings.reader.minTasks },
              { label: "max tasks", value: settings.reader.maxTasks },
            ],
          },
        },
      ]),
      ...functionRow(12, "Scorer", scorer, settings.scorer),
      ...functionRow(18, "Alerter", alerter, settings.alerter),
      {
        type: "alarm",
        x: 0,
        y: 24,
        width: 24,
        height: 4,
        properties: { title: "Alarms", alarms: created.map((a) => a.arn) },
      },
    ],
  }),
});
