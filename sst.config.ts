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
    const { redis } = await import("./infra/redis.ts");
    const { influx } = await import("./infra/influx.ts");
    const { alerter, alertFailures } = await import("./infra/alerter.ts");
    const { scorer } = await import("./infra/scorer.ts");
    const { reader } = await import("./infra/reader.ts");
    const { alarmTopic, alarmNames, dashboard } = await import("./infra/monitoring.ts");

    return {
      scorer: scorer.name,
      alerter: alerter.name,
      reader: reader.nodes.service.name,
      alertFailuresQueue: alertFailures.url,
      redis: "host" in redis ? redis.host : "external (RedisUrl secret)",
      influxUrl: influx.url,
      alarmTopic: alarmTopic.arn,
      alarms: alarmNames,
      dashboard: dashboard.dashboardName,
    };
  },
});
