/**
 * Owns: the alert function ("Alerter", reference §4) the scorer invokes asynchronously (Event) for
 * each critical event, Lambda's retry policy for those invocations, the failure queue that keeps
 * every alert Lambda could not deliver (failed after retries, or older than the maximum event
 * age): alerts never vanish, and `monitoring.ts` alarms as soon as one lands there. Also the
 * one-minute tick that flushes throttle summaries, in a function of its own (below).
 * Both functions are traced with X-Ray (active tracing).
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
import { activeTracing, tracingPermissions } from "./tracing.ts";

/** Undeliverable alerts, with Lambda's failure record (`requestPayload` is the alert). */
export const alertFailures = new sst.aws.Queue("AlertFailures", {
  transform: { queue: { messageRetentionSeconds: 14 * 24 * 60 * 60 } },
});

/** What the alert function and its tick share: the same code, links and configuration. */
function alerterArgs(extraPermissions: sst.aws.FunctionPermissionArgs[] = []) {
  return {
    handler: "functions/alert.handler",
    runtime: "nodejs22.x",
    architecture: "arm64",
    memory: `${settings.alerter.memoryMb} MB`,
    timeout: `${settings.alerter.timeoutSeconds} seconds`,
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
      ...tracingPermissions,
      // email channel (SES v2 SendEmail), only when the stage configures it
      ...(settings.notifications.emailFrom
        ? [{ actions: ["ses:SendEmail"], resources: ["*"] }]
        : []),
      ...extraPermissions,
    ],
    environment: alerterEnvironment(settings),
  } satisfies sst.aws.FunctionArgs;
}

export const alerter = new sst.aws.Function("Alerter", {
  ...alerterArgs([
    // Lambda delivers to the on-failure destination with the function's own role
    { actions: ["sqs:SendMessage"], resources: [alertFailures.arn] },
  ]),
  concurrency: { reserved: settings.alerter.reservedConcurrency },
  transform: { function: activeTracing },
});

// Set here rather than through the Function's `retries`, which creates its own config without
// a destination (a function has one event-invoke config; two would fight).
export const alerterAsyncConfig = new aws.lambda.FunctionEventInvokeConfig("AlerterAsyncConfig", {
  functionName: alerter.name,
  maximumRetryAttempts: settings.alerter.maxRetryAttempts,
  maximumEventAgeInSeconds: settings.alerter.maxEventAgeSeconds,
  destinationConfig: { onFailure: { destination: alertFailures.arn } },
});

/**
 * Throttle summaries of a window that ended with no later alert go out on the alert function's
 * next invocation (core/alert/throttle.ts); this tick bounds that wait to a minute. It invokes a
 * function of its own — same code and configuration, no reservation, no retries, no failure
 * destination, event age 60 s — so a failing tick (`{"alerts": []}`) never lands in
 * AlertFailures nor counts in the Alerter's AsyncEventsDropped: a missed tick is superseded by
 * the next one. Its errors have an alarm of their own (AlerterTick-Errors).
 */
export const alerterTickFunction = new sst.aws.Function("AlerterTickFunction", {
  ...alerterArgs(),
  retries: 0,
  transform: {
    function: activeTracing,
    eventInvokeConfig: { maximumEventAgeInSeconds: 60 },
  },
});

export const alerterTick = new sst.aws.Cron("AlerterTick", {
  schedule: "rate(1 minute)",
  function: alerterTickFunction,
  event: { alerts: [] },
});
