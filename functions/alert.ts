/**
 * The alert function (SPEC §4): `{ alerts: [...] }` in (invoked asynchronously by the scorer);
 * each alert listed once per tx_id in the Redis list, newest first, bounded and retained.
 * Notification channels plug in behind {@link Notifier}; they hear only newly listed alerts,
 * so a redelivered alert never notifies twice.
 */
import type { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { z } from "zod";
import type { Alert } from "../core/alert/alert.ts";
import { AlertList } from "../core/alert/store.ts";
import type { Config } from "../core/config.ts";
import { createLogger, createRedis, runtimeConfig } from "./shared/runtime.ts";

/** A notification channel (Slack, PagerDuty, webhook, email): the seam for later channels. */
export interface Notifier {
  readonly name: string;
  notify(alerts: readonly Alert[]): Promise<void>;
}

export interface AlertDeps {
  list: AlertList;
  notifiers: Notifier[];
  logger: Logger;
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
  const { logger } = deps;
  return middy<unknown, AlertResult, Error, Context>()
    .use(injectLambdaContext(logger))
    .handler(async (event) => {
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
      // Channels never hold back the list; their failures are theirs to log and retry.
      const results =
        listed.length === 0
          ? []
          : await Promise.allSettled(deps.notifiers.map((n) => n.notify(listed)));
      results.forEach((r, i) => {
        if (r.status === "rejected") {
          logger.error("notification channel failed", {
            channel: deps.notifiers[i]?.name,
            error: (r.reason as Error)?.message ?? String(r.reason),
          });
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
  return {
    list: new AlertList(redis, {
      listKey: c.ALERT_LIST_KEY,
      maxLength: c.ALERT_LIST_MAX,
      retentionSeconds: c.ALERT_LIST_TTL_S,
    }),
    notifiers: [],
    logger: createLogger("waf-alerter", c.LOG_LEVEL),
  };
}

let live: Promise<ReturnType<typeof createHandler>> | undefined;

export const handler = async (event: unknown, context: Context): Promise<AlertResult> => {
  live ??= liveDeps().then(createHandler);
  return (await live)(event, context);
};
