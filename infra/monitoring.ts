/**
 * Owns: the stage's alarm topic (SNS) and where it routes (email, PagerDuty's CloudWatch
 * integration over HTTPS, AWS Chatbot to Slack), every paging CloudWatch alarm (`alarms.ts`
 * defines them), and the stage's dashboard. Names: `<app>-<stage>-alarms` (topic),
 * `<app>-<stage>-<Component>-<Check>` (alarms), `<app>-<stage>` (dashboard), e.g.
 * `waf-event-processor-production-Scorer-Throttles`. The reader's scaling alarms live in
 * `reader.ts` and page nobody.
 * Differs by stage: thresholds (`stages.ts` `alarms`), the reservations and timeouts the
 * near-limit alarms are computed from, Redis alarms (managed Redis only; CPU credits on
 * burstable nodes only), the routes (deploy-time `WAF_ALARM_*`). Under `sst dev` the reader runs
 * on the laptop: no reader alarms, no reader widgets.
 */
import { type AlarmDef, alarmDefinitions, type MetricRef } from "./alarms.ts";
import { alerter, alerterTickFunction, alertFailures } from "./alerter.ts";
import { METRICS_NAMESPACE } from "./environment.ts";
import { readerService } from "./reader.ts";
import { redis } from "./redis.ts";
import { scorer } from "./scorer.ts";
import { namePrefix, settings } from "./settings.ts";
import { type FunctionSettings, peakScorerInvocations, redisNodeCount } from "./stages.ts";

export const alarmTopic = new aws.sns.Topic("Alarms", { name: `${namePrefix}-alarms` });

const routes = settings.alarms;
if (routes.email) {
  new aws.sns.TopicSubscription("AlarmsEmail", {
    topic: alarmTopic.arn,
    protocol: "email",
    endpoint: routes.email,
  });
}
if (routes.pagerDutyUrl) {
  // PagerDuty's "Amazon CloudWatch" integration: it confirms the subscription itself, opens an
  // incident on ALARM and resolves it on OK (both are sent to the topic)
  new aws.sns.TopicSubscription("AlarmsPagerDuty", {
    topic: alarmTopic.arn,
    protocol: "https",
    endpoint: routes.pagerDutyUrl,
    endpointAutoConfirms: true,
  });
}
if (routes.slack) {
  // AWS Chatbot (Amazon Q Developer in chat applications) posts the topic's alarms to a Slack
  // channel; the workspace must have been authorised once in the Chatbot console
  const role = new aws.iam.Role("AlarmsChatbotRole", {
    assumeRolePolicy: aws.iam.assumeRolePolicyForPrincipal({ Service: "chatbot.amazonaws.com" }),
    managedPolicyArns: ["arn:aws:iam::aws:policy/CloudWatchReadOnlyAccess"],
  });
  new aws.chatbot.SlackChannelConfiguration("AlarmsSlack", {
    configurationName: `${namePrefix}-alarms`.slice(0, 128),
    iamRoleArn: role.arn,
    slackTeamId: routes.slack.teamId,
    slackChannelId: routes.slack.channelId,
    snsTopicArns: [alarmTopic.arn],
    guardrailPolicyArns: ["arn:aws:iam::aws:policy/CloudWatchReadOnlyAccess"],
  });
}

/** ElastiCache member clusters (one node each), sorted; their count is known from the stage. */
function redisNodes(): $util.Output<string>[] | undefined {
  if (!(redis instanceof sst.aws.Redis)) return undefined;
  const expected = redisNodeCount(settings);
  const ids = redis.nodes.cluster.apply((group) => group.memberClusters);
  return Array.from({ length: expected }, (_, i) =>
    ids.apply((all) => {
      const sorted = [...all].sort();
      const id = sorted[i];
      if (sorted.length !== expected || id === undefined) {
        throw new Error(
          `ElastiCache reports ${sorted.length} member clusters, infra/stages.ts expects ${expected}`,
        );
      }
      return id;
    }),
  );
}

const nodes = redisNodes();
const definitions = alarmDefinitions<$util.Input<string>>(settings, {
  scorer: scorer.name,
  alerter: alerter.name,
  tick: alerterTickFunction.name,
  failureQueue: alertFailures.nodes.queue.name,
  reader: readerService,
  redisNodes: nodes,
});

const metricQuery = (id: string, m: MetricRef<$util.Input<string>>) => ({
  id,
  returnData: false,
  metric: {
    namespace: m.namespace,
    metricName: m.name,
    dimensions: m.dimensions,
    period: m.periodSeconds,
    stat: m.stat,
  },
});

/** One alarm, named `<app>-<stage>-<component>-<check>`, notifying the topic on ALARM and OK. */
function createAlarm(def: AlarmDef<$util.Input<string>>) {
  const { metric, math } = def;
  return new aws.cloudwatch.MetricAlarm(`${def.component}${def.check}Alarm`, {
    name: `${namePrefix}-${def.component}-${def.check}`,
    alarmDescription: def.description,
    comparisonOperator: def.comparison,
    threshold: def.threshold,
    evaluationPeriods: def.evaluationPeriods,
    datapointsToAlarm: def.datapointsToAlarm,
    treatMissingData: def.missing,
    alarmActions: [alarmTopic.arn],
    okActions: [alarmTopic.arn],
    ...(metric
      ? {
          namespace: metric.namespace,
          metricName: metric.name,
          dimensions: metric.dimensions,
          period: metric.periodSeconds,
          ...(metric.stat.startsWith("p")
            ? { extendedStatistic: metric.stat }
            : { statistic: metric.stat }),
        }
      : {
          metricQueries: [
            ...(math?.metrics ?? []).map((m, i) => metricQuery(`m${i}`, m)),
            { id: "e", expression: math?.expression, label: math?.label, returnData: true },
          ],
        }),
  });
}

const created = definitions.map(createAlarm);
const { alarms: thresholds } = settings;

const region = aws.getRegionOutput().region;
const period = thresholds.periodSeconds;
let searches = 0;
const search = (metric: string, stat: string, label: string) => ({
  id: `s${++searches}`,
  expression: `SEARCH('{${METRICS_NAMESPACE},service,stage} stage="${settings.stage}" MetricName="${metric}"', '${stat}', ${period})`,
  label,
});
/** One line per ElastiCache node. */
const nodeMetrics = (metric: string) =>
  (nodes ?? []).map((id, i) => [
    "AWS/ElastiCache",
    metric,
    "CacheClusterId",
    id,
    { stat: "Maximum", label: `node ${i + 1}` },
  ]);
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
          title: "Dead-lettered / DLQ length / failed alerts",
          metrics: [
            [search("DeadLettered", "Sum", "dead-lettered")],
            [search("DlqLength", "Maximum", "DLQ length (capped)")],
            [
              "AWS/SQS",
              "ApproximateNumberOfMessagesVisible",
              "QueueName",
              alertFailures.nodes.queue.name,
              { stat: "Maximum", label: "failed alerts" },
            ],
          ],
        },
        ...(readerService
          ? [
              {
                title: "Reader tasks (scaled on lag per task)",
                metrics: [
                  [
                    "ECS/ContainerInsights",
                    "RunningTaskCount",
                    "ClusterName",
                    readerService.clusterName,
                    "ServiceName",
                    readerService.serviceName,
                    { stat: "Minimum", label: "running" },
                  ],
                  [
                    "AWS/ECS",
                    "CPUUtilization",
                    "ClusterName",
                    readerService.clusterName,
                    "ServiceName",
                    readerService.serviceName,
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
            ]
          : []),
      ]),
      ...functionRow(12, "Scorer", scorer, settings.scorer),
      ...functionRow(18, "Alerter", alerter, settings.alerter),
      ...(nodes
        ? row(24, [
            {
              title: "Redis memory used % (noeviction: full refuses XADD)",
              metrics: nodeMetrics("DatabaseMemoryUsagePercentage"),
              annotations: {
                horizontal: [{ label: "alarm", value: thresholds.redisMemoryPercent }],
              },
            },
            {
              title: "Redis engine CPU %",
              metrics: nodeMetrics("EngineCPUUtilization"),
              annotations: {
                horizontal: [{ label: "alarm", value: thresholds.redisEngineCpuPercent }],
              },
            },
          ])
        : []),
      {
        type: "alarm",
        x: 0,
        y: 30,
        width: 24,
        height: 4,
        properties: { title: "Alarms", alarms: created.map((a) => a.arn) },
      },
    ],
  }),
});
