/**
 * Owns: the secrets (`npx sst secret set <Name> <value> --stage <stage>`), linked only to the
 * runtimes that use them and read there as `Resource.<Name>.value`. Never in Git, never in
 * plain environment variables of the functions.
 * Differs by stage: `IpHashKey` is mandatory where `ipMasking` is `hash`. A notification channel
 * whose secret is unset stays off (reference §4): those secrets default to "".
 * `RedisUrl` lives in `redis.ts`: it exists only on stages with an external Redis.
 */
import { settings } from "./settings.ts";

/** InfluxDB API token (`INFLUXDB_TOKEN`): mandatory, a deploy without it fails. */
export const influxToken = new sst.Secret("InfluxToken");

/** Slack incoming-webhook URL (`SLACK_WEBHOOK_URL`). */
export const slackWebhookUrl = new sst.Secret("SlackWebhookUrl", "");

/** PagerDuty Events API v2 routing key (`PAGERDUTY_ROUTING_KEY`). */
export const pagerDutyRoutingKey = new sst.Secret("PagerDutyRoutingKey", "");

/** Generic alert webhook URL (`ALERT_WEBHOOK_URL`): a URL with a token in it is a secret too. */
export const alertWebhookUrl = new sst.Secret("AlertWebhookUrl", "");

/** HMAC key the generic webhook signs its body with (`ALERT_WEBHOOK_SECRET`). */
export const alertWebhookSecret = new sst.Secret("AlertWebhookSecret", "");

/** Key of `IP_MASKING=hash` (`IP_HASH_KEY`). */
export const ipHashKey =
  settings.ipMasking === "hash" ? new sst.Secret("IpHashKey") : new sst.Secret("IpHashKey", "");
