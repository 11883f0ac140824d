/* Hand-written in the shape `sst deploy` / `sst dev` generate (committed: CI never deploys). */
/* Keep in step with the links in infra/: a name here is linked to at least one runtime. */
/* tslint:disable */
/* eslint-disable */
/* deno-fmt-ignore-file */

import "sst"
export {}
declare module "sst" {
  export interface Resource {
    /** Linked to the Scorer: invoke it with InvocationType "Event" (ALERT_FUNCTION holds the same name). */
    "Alerter": {
      "name": string
      "type": "sst.aws.Function"
    }
    /** Generic alert webhook HMAC key (ALERT_WEBHOOK_SECRET); "" = unsigned. Alerter. */
    "AlertWebhookSecret": {
      "type": "sst.sst.Secret"
      "value": string
    }
    /** Generic alert webhook URL (ALERT_WEBHOOK_URL); "" = channel off. Alerter. */
    "AlertWebhookUrl": {
      "type": "sst.sst.Secret"
      "value": string
    }
    /** InfluxDB API token (INFLUXDB_TOKEN). Scorer. */
    "InfluxToken": {
      "type": "sst.sst.Secret"
      "value": string
    }
    /** IP_HASH_KEY for IP_MASKING=hash; "" on stages that do not hash. Scorer, Alerter. */
    "IpHashKey": {
      "type": "sst.sst.Secret"
      "value": string
    }
    /** PAGERDUTY_ROUTING_KEY; "" = channel off. Alerter. */
    "PagerDutyRoutingKey": {
      "type": "sst.sst.Secret"
      "value": string
    }
    /**
     * Managed Redis (stages with redis.mode "managed": every built-in stage): TLS is required, so
     * connect to `rediss://${username}:${password}@${host}:${port}`. In cluster mode (staging,
     * production) `host` is the configuration endpoint and REDIS_MODE=cluster is set. Exactly one
     * of Redis / RedisUrl is linked on a stage: test with `"Redis" in Resource`. Scorer, Alerter
     * (and the tick's function); the Reader only under `sst dev` (on AWS it gets REDIS_URL from SSM).
     */
    "Redis": {
      "host": string
      "password": string
      "port": number
      "type": "sst.aws.Redis"
      "username": string
    }
    /** External Redis URL (REDIS_URL) on stages with redis.mode "external" (none built in). Scorer, Alerter; the Reader gets it from SSM. */
    "RedisUrl": {
      "type": "sst.sst.Secret"
      "value": string
    }
    /** Linked to the Reader (SCORER_FUNCTION holds the same name). */
    "Scorer": {
      "name": string
      "type": "sst.aws.Function"
    }
    /** SLACK_WEBHOOK_URL; "" = channel off. Alerter. */
    "SlackWebhookUrl": {
      "type": "sst.sst.Secret"
      "value": string
    }
  }
}
