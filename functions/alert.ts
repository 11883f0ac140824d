/**
 * The alert function: `{ alerts: [...] }` in (invoked asynchronously by the scorer; `{ "alerts":
 * [] }` is a valid tick). Middleware, payload validation, then the use case
 * (core/use-cases/handle-alerts.ts). Clients are built once and reused.
 *
 * Each alert is validated on its own, `kind: "event"` (or no kind: alerts from before kinds
 * existed) or `kind: "campaign"` with its figures, and every field a request can write is
 * bounded and made well-formed (core/alert/alert.ts `boundAlert`), never refused for its size:
 * a field an attacker made long must not silence the alert. A malformed alert does not hold
 * back the others: they are listed and notified, then the invocation fails (Lambda keeps the
 * payload for its on-failure destination; its retries find the others done).
 */

import type { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { type Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { SESv2Client } from "@aws-sdk/client-sesv2";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { z } from "zod";
import { type Alert, boundAlert } from "../core/alert/alert.ts";
import { AlertList } from "../core/alert/alert-list.ts";
import { alertKeys } from "../core/alert/keys.ts";
import { notifiersFromConfig } from "../core/alert/notifiers.ts";
import type { AlertStore, Notifier, OffenderTracker } from "../core/alert/ports.ts";
import type { Config } from "../core/config.ts";
import { isCluster } from "../core/lib/redis.ts";
import { RepeatOffenders } from "../core/reputation/offenders.ts";
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

/** Fields of every alert; strings of any length (bounded after parsing, never refused). */
const base = {
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
};
const eventSchema = z.object({ ...base, kind: z.literal("event").optional() });
const campaignSchema = z.object({
  ...base,
  kind: z.literal("campaign"),
  window_start: z.number(),
  window_seconds: z.number(),
  events: z.number(),
  blocked: z.number(),
  top_rules: z.array(z.object({ rule_id: z.string(), events: z.number() })),
});
const requestSchema = z.object({ alerts: z.array(z.unknown()) });

/** One alert, by its kind: `campaign`, or an event (`event`, or no kind at all). */
function parseAlert(raw: unknown) {
  const kind =
    raw !== null && typeof raw === "object" ? (raw as { kind?: unknown }).kind : undefined;
  return kind === "campaign" ? campaignSchema.safeParse(raw) : eventSchema.safeParse(raw);
}

/** Where and why an alert is malformed, without quoting it (its fields come from requests). */
function issueOf(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join(".") || "alert"}: ${issue.code}` : "invalid";
}

export function createHandler(deps: AlertDeps) {
  const { logger, metrics } = deps;
  const chain = middy<unknown, AlertResult, Error, Context>().use(injectLambdaContext(logger));
  if (metrics) chain.use(logMetrics(metrics));
  return chain.handler(async (event, context) => {
    const parsed = requestSchema.safeParse(event);
    if (!parsed.success) {
      // Retrying cannot fix a malformed payload; Lambda's on-failure destination keeps it.
      throw new Error(`invalid alert request: ${issueOf(parsed.error)}`);
    }
    const alerts: Alert[] = [];
    const invalid: string[] = [];
    parsed.data.alerts.forEach((raw, index) => {
      const r = parseAlert(raw);
      if (r.success) alerts.push(boundAlert(r.data as Alert));
      else invalid.push(`alerts.${index}.${issueOf(r.error)}`);
    });
    const result = await handleAlerts(
      alerts,
      {
        ...deps,
        metrics: metrics && { count: (name, n) => metrics.addMetric(name, MetricUnit.Count, n) },
      },
      context?.awsRequestId,
    );
    if (invalid.length > 0) {
      throw new Error(
        `invalid alert request: ${invalid.length} of ${parsed.data.alerts.length} alerts malformed (${invalid.slice(0, 3).join("; ")})`,
      );
    }
    return result;
  });
}

export async function liveDeps(config?: Config): Promise<AlertDeps> {
  const c = config ?? (await runtimeConfig());
  const logger = createLogger("waf-alerter", c.LOG_LEVEL);
  const redis = openRedis(c.REDIS_URL, await redisMode(c), {}, logger);
  const metrics = createMetrics("waf-alerter");
  const keys = alertKeys(c.ALERT_LIST_KEY, c.REPUTATION_SET_KEY, { cluster: isCluster(redis) });
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
            key: keys.offenders,
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
