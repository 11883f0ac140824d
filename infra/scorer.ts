/**
 * Owns: the scoring function ("Scorer", reference §3–§5) the reader invokes synchronously with a
 * batch: parses, scores, writes InfluxDB points, queues alerts by invoking the Alerter.
 * Least privilege: linking the Alerter grants `lambda:InvokeFunction` on the Alerter's ARN and
 * nothing else; the other links are secrets and Redis, which grant no IAM permission.
 * Traced with X-Ray (active tracing).
 * Differs by stage: memory, timeout, reserved concurrency (sized by `stages.ts` so the readers
 * can never be throttled), log retention, VPC membership, scoring profile and campaign settings.
 */
import { alerter } from "./alerter.ts";
import { scorerEnvironment } from "./environment.ts";
import { influx } from "./influx.ts";
import { vpc } from "./network.ts";
import { redis } from "./redis.ts";
import { ipHashKey } from "./secrets.ts";
import { settings } from "./settings.ts";
import { functionsInVpc } from "./stages.ts";
import { activeTracing, tracingPermissions } from "./tracing.ts";

export const scorer = new sst.aws.Function("Scorer", {
  handler: "functions/score.handler",
  runtime: "nodejs22.x",
  architecture: "arm64",
  memory: `${settings.scorer.memoryMb} MB`,
  timeout: `${settings.scorer.timeoutSeconds} seconds`,
  concurrency: { reserved: settings.scorer.reservedConcurrency },
  logging: { retention: settings.logRetention },
  vpc: functionsInVpc(settings) ? vpc : undefined,
  link: [alerter, influx.token, ipHashKey, redis],
  permissions: tracingPermissions,
  environment: {
    ...scorerEnvironment(settings),
    INFLUXDB_URL: influx.url,
    ALERT_FUNCTION: alerter.name,
  },
  transform: { function: activeTracing },
});
