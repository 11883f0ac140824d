/**
 * Never imported, never run: `npm run typecheck` (tsconfig.infra.json) proves with it that SST's
 * real component types are in force. Each line below is wrong on purpose and marked
 * `@ts-expect-error`; if SST's types stopped loading (every component `any`) or stopped checking
 * arguments, the marks would go unused and the type-check would fail.
 */
export function typecheckCanary(): void {
  new sst.aws.Function("CanaryFunction", {
    handler: "functions/score.handler",
    // @ts-expect-error misspelt argument (`concurrency`)
    concurency: { reserved: 1 },
  });
  new sst.aws.Function("CanaryRuntime", {
    handler: "functions/score.handler",
    // @ts-expect-error a runtime Lambda does not offer
    runtime: "nodejs8.x",
  });
  new sst.aws.Redis("CanaryRedis", {
    vpc: { subnets: [], securityGroups: [] },
    // @ts-expect-error SST's Redis takes `cluster: { nodes }`, not shards
    cluster: { shards: 2 },
  });
  new aws.cloudwatch.MetricAlarm("CanaryAlarm", {
    comparisonOperator: "GreaterThanThreshold",
    evaluationPeriods: 1,
    // @ts-expect-error misspelt argument (`treatMissingData`)
    treatMissing: "ignore",
  });
}
