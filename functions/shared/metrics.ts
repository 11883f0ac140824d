/**
 * CloudWatch metrics in Embedded Metric Format (Powertools Metrics): namespace
 * `WafEventProcessor`, dimensions exactly `service` + `stage`, which is what the alarms and
 * the dashboard in infra/monitoring.ts match. Locally they are JSON lines in the logs
 * (`POWERTOOLS_METRICS_DISABLED=true` silences them).
 */
import { Metrics } from "@aws-lambda-powertools/metrics";

export function createMetrics(serviceName: string): Metrics {
  return new Metrics({
    namespace: process.env.POWERTOOLS_METRICS_NAMESPACE ?? "WafEventProcessor",
    serviceName: process.env.POWERTOOLS_SERVICE_NAME ?? serviceName,
    defaultDimensions: { stage: process.env.STAGE ?? "local" },
  });
}
