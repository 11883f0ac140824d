/**
 * Owns: the alert function ("Alerter", reference §4) the scorer invokes asynchronously (Event) for
 * each critical event, Lambda's retry policy for those invocations, and the failure queue that
 * keeps every alert Lambda could not deliver (failed after retries, or older than the maximum
 * event age): alerts never vanish, and `monitoring.ts` alarms as soon as one lands there.
 * Differs by stage: memory, timeout, reserved concurrency, log retention, max event age.
 */
import { alerterEnvironment } from "./environment.ts";
import { vpc } from "./network.ts";
import { redis } from "./redis.ts";
import {
  alertWebhookSecret,
  alertWebhookUrl,
  ipHashKey,
  pagerDutyRoutingKey,
  slackWebhookUrl,
} from "./secrets.ts";
import { settings } from "./settings.ts";
import { functionsInVpc } from "./stages.ts";

/** Undeliverable alerts, with Lambda's failure record (`requestPayload` is the alert). */
export const alertFailures = new sst.aws.Queue("AlertFailures", {
  transform: { queue: { messageRetentionSeconds: 14 * 24 * 60 * 60 } },
});

export const alerter = new sst.aws.Function("Alerter", {
  handler: "functions/alert.handler",
  runtime: "nodejs22.x",
  architecture: "arm64",
  memory: `${settings.alerter.memoryMb} MB`,
  timeout: `${settings.alerter.timeoutSeconds} seconds`,
  concurrency: { reserved: settings.alerter.reservedConcurrency },
  logging: { retention: settings.logRetention },
  vpc: functionsInVpc(settings) ? vpc : undefined,
  link: [
    redis,
    slackWebhookUrl,
    pagerDutyRoutingKey,
    alertWebhookUrl,
    alertWebhookSecret,
    ipHashKey,
  ],
  permissions: [
    // Lambda delivers to the on-failure destination with the function's own role
    { actions: ["sqs:SendMessage"], resources: [alertFailures.arn] },
    // email channel (SES v2 SendEmail), only when the stage configures it
    ...(settings.notifications.emailFrom ? [{ actions: ["ses:SendEmail"], resources: ["*"] }] : []),
  ],
  environment: alerterEnvironment(settings),
});

// Set here rather than through the Function's `retries`, which creates its own config without
// a destination (a function has one event-invoke config; two would fight).
export const alerterAsyncConfig = new aws.lambda.FunctionEventInvokeConfig("AlerterAsyncConfig", {
  functionName: alerter.name,
  maximumRetryAttempts: settings.alerter.maxRetryAttempts,
  maximumEventAgeInSeconds: settings.alerter.maxEventAgeSeconds,
  destinationConfig: { onFailure: { destination: alertFailures.arn } },
});

// Throttle summaries of a window that ended with no later alert go out on the alert function's
// next invocation (core/alert/throttle.ts); this tick bounds that wait to a minute.
export const alerterTick = new sst.aws.Cron("AlerterTick", {
  schedule: "rate(1 minute)",
  function: alerter,
  event: { alerts: [] },
});
