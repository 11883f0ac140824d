/// <reference path="./.sst/platform/config.d.ts" />

/**
 * `npx sst deploy --stage <stage>`: the WAF event processor on AWS (docs/deploy.md).
 * Thin on purpose: per-stage numbers live in infra/stages.ts, each concern in its own infra/ file.
 */
export default $config({
  async app(input) {
    const { appSettings } = await import("./infra/stages.ts");
    return {
      name: "waf-event-processor",
      home: "aws",
      // production: stateful resources retained on `sst remove`, and `sst remove` refused
      ...appSettings(input.stage),
    };
  },
  async run() {
    await import("./infra/network.ts");
    const { redis, redisUrlParameter } = await import("./infra/redis.ts");
    const { influx } = await import("./infra/influx.ts");
    const { alerter, alertFailures } = await import("./infra/alerter.ts");
    const { scorer } = await import("./infra/scorer.ts");
    const { readerService } = await import("./infra/reader.ts");
    const { alarmTopic, alarmNames, dashboard } = await import("./infra/monitoring.ts");

    return {
      scorer: scorer.name,
      alerter: alerter.name,
      // `sst dev` runs the reader locally: no ECS service then
      reader: readerService?.serviceName ?? "local (sst dev)",
      alertFailuresQueue: alertFailures.url,
      redis: "host" in redis ? redis.host : "external (RedisUrl secret)",
      // producers with a path into the VPC read REDIS_URL here (docs/deploy.md)
      redisUrlParameter: redisUrlParameter.name,
      influxUrl: influx.url,
      alarmTopic: alarmTopic.arn,
      alarms: alarmNames,
      dashboard: dashboard.dashboardName,
    };
  },
});
