/**
 * The alert function: `{ alerts: [...] }` in (invoked asynchronously by the scorer; `{ "alerts":
 * [] }` is a valid tick). Middleware, payload validation, then the use case
 * (core/use-cases/handle-alerts.ts). Clients are built once and reused.
 */
import type { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { type Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { SESv2Client } from "@aws-sdk/client-sesv2";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { z } from "zod";
import type { Alert } from "../core/alert/alert.ts";
import { AlertList } from "../core/alert/alert-list.ts";
import { notifiersFromConfig } from "../core/alert/notifiers.ts";
import type { AlertStore, Notifier, OffenderTracker } from "../core/alert/ports.ts";
import type { Config } from "../core/config.ts";
import { offendersKey, RepeatOffenders } from "../core/reputation/offenders.ts";
import { type AlertResult, handleAlerts } from "../core/use-cases/handle-alerts.ts";
import { createMetrics } from "./shared/metrics.ts";
import { createLogger, openRedis, redisMode, runtimeConfig } from "./shared/runtime.ts";

export interface AlertDeps {
  list: AlertStore;
  notifiers: Notifier[];
  logger: Logger;
  offenders?: OffenderTracker;
  /** CloudWatch EMF metrics (functions/shared/metrics.ts); optional in tests. */
  metrics?: Metrics;
}

const alertSchema = z.object({
  timestamp: z.number(),
  severity: z.number(),
  severity_level: z.enum(["critical", "high", "medium", "low"]),
  client_ip: z.string(),
  rule_id: z.string(),
  categories: z.array(z.string()),
  uri: z.string(),
  method: z.string(),
  tx_id: z.string().min(1),
  anomaly_score: z.number(),
});
const requestSchema = z.object({ alerts: z.array(alertSchema) });

export function createHandler(deps: AlertDeps) {
  const { logger, metrics } = deps;
  const chain = middy<unknown, AlertResult, Error, Context>().use(injectLambdaContext(logger));
  if (metrics) chain.use(logMetrics(metrics));
  return chain.handler(async (event) => {
    const parsed = requestSchema.safeParse(event);
    if (!parsed.success) {
      // Retrying cannot fix a malformed payload; Lambda's on-failure destination keeps it.
      throw new Error(`invalid alert request: ${parsed.error.issues[0]?.message}`);
    }
    const alerts = parsed.data.alerts as Alert[];
    return handleAlerts(alerts, {
      ...deps,
      metrics: metrics && { count: (name, n) => metrics.addMetric(name, MetricUnit.Count, n) },
    });
  });
}

export async function liveDeps(config?: Config): Promise<AlertDeps> {
  const c = config ?? (await runtimeConfig());
  const logger = createLogger("waf-alerter", c.LOG_LEVEL);
  const redis = openRedis(c.REDIS_URL, await redisMode(c), {}, logger);
  const metrics = createMetrics("waf-alerter");
  return {
    list: new AlertList(redis, {
      listKey: c.ALERT_LIST_KEY,
      maxLength: c.ALERT_LIST_MAX,
      retentionSeconds: c.ALERT_LIST_TTL_S,
    }),
    notifiers: notifiersFromConfig(c, {
      redis,
      logger,
      metrics: { count: (name, n) => metrics.addMetric(name, MetricUnit.Count, n) },
      // Our own retries run under NOTIFY_DEADLINE_MS; the SDK's would stack on top.
      ses: () => new SESv2Client({ maxAttempts: 1 }),
    }),
    offenders:
      c.REPEAT_OFFENDER_THRESHOLD > 0
        ? new RepeatOffenders(redis, {
            key: offendersKey(c.REPUTATION_SET_KEY),
            threshold: c.REPEAT_OFFENDER_THRESHOLD,
            windowSeconds: c.REPEAT_OFFENDER_WINDOW_S,
            ttlSeconds: c.REPEAT_OFFENDER_TTL_S,
            masking: c.IP_MASKING,
          })
        : undefined,
    logger,
    metrics,
  };
}

let live: Promise<ReturnType<typeof createHandler>> | undefined;

export const handler = async (event: unknown, context: Context): Promise<AlertResult> => {
  live ??= liveDeps().then(createHandler);
  return (await live)(event, context);
};
