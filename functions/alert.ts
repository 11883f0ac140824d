/**
 * The alert function (SPEC §4): `{ alerts: [...] }` in (invoked asynchronously by the scorer);
 * each alert listed once per tx_id in the Redis list, newest first, bounded and retained.
 * Then, side by side and never holding back the list (already pushed): notification channels
 * behind {@link Notifier} (core/alert/notifier.ts: minimum severity, throttle, retries,
 * circuit breaker) and repeat-offender counting. Channels hear only newly listed alerts, so a
 * redelivered alert never notifies twice; they are called on every invocation, with no alerts
 * too, so that throttle summaries that came due go out (`{ "alerts": [] }` is a valid tick).
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
import type { Config } from "../core/config.ts";
import { offendersKey, RepeatOffenders } from "../core/reputation/offenders.ts";
import { createMetrics } from "./shared/metrics.ts";
import { createLogger, createRedis, runtimeConfig } from "./shared/runtime.ts";

/**
 * A notification channel (Slack, PagerDuty, webhook, email). Should not throw; if one does,
 * the handler logs it and carries on.
 */
export interface Notifier {
  readonly name: string;
  notify(alerts: readonly Alert[]): Promise<void>;
}

/** Counts critical alerts per client and marks repeat offenders (core/reputation/offenders.ts). */
export interface OffenderTracker {
  record(alerts: readonly Alert[]): Promise<string[]>;
}

export interface AlertDeps {
  list: AlertList;
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

export interface AlertResult {
  received: number;
  listed: number;
  duplicates: number;
}

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
    const listed = await deps.list.push(alerts);
    for (const a of listed) {
      logger.info("alert listed", {
        tx_id: a.tx_id,
        client_ip: a.client_ip,
        severity: a.severity,
        rule_id: a.rule_id,
      });
    }
    metrics?.addMetric("AlertsReceived", MetricUnit.Count, alerts.length);
    metrics?.addMetric("AlertsListed", MetricUnit.Count, listed.length);
    // The list is pushed; nothing below may fail the invocation (a retry would find every
    // alert listed already and do nothing), so each side effect logs its own failure.
    const offenders =
      deps.offenders && listed.length > 0 ? deps.offenders.record(listed) : undefined;
    const results = await Promise.allSettled([
      ...deps.notifiers.map((n) => n.notify(listed)),
      ...(offenders ? [offenders] : []),
    ]);
    results.forEach((r, i) => {
      if (r.status === "rejected") {
        const notifier = deps.notifiers[i];
        logger.error(notifier ? "notification channel failed" : "repeat-offender tracking failed", {
          ...(notifier ? { channel: notifier.name } : {}),
          error: (r.reason as Error)?.message ?? String(r.reason),
        });
      } else if (i === deps.notifiers.length) {
        for (const entry of r.value as string[]) {
          logger.warn("repeat offender: now treated as malicious", { client_ip: entry });
        }
      }
    });
    return {
      received: alerts.length,
      listed: listed.length,
      duplicates: alerts.length - listed.length,
    };
  });
}

export async function liveDeps(config?: Config): Promise<AlertDeps> {
  const c = config ?? (await runtimeConfig());
  const redis = createRedis(c.REDIS_URL);
  const logger = createLogger("waf-alerter", c.LOG_LEVEL);
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
