import { describe, expect, it } from "vitest";
import {
  alerterEnvironment,
  METRICS_NAMESPACE,
  readerEnvironment,
  SERVICE_NAMES,
  scorerEnvironment,
} from "./environment.ts";
import { resolveStage } from "./stages.ts";

describe("runtime environment", () => {
  const production = resolveStage("production");

  it("hands the reader its stage's batch and concurrency settings under reference §6 names", () => {
    expect(readerEnvironment(production)).toMatchObject({
      STREAM_KEY: "waf-realtime",
      CONSUMER_GROUP: "realtime-processor",
      DLQ_STREAM_KEY: "waf-realtime:dlq",
      BATCH_SIZE: String(production.reader.batchSize),
      BATCH_WINDOW_MS: String(production.reader.batchWindowMs),
      MAX_IN_FLIGHT: String(production.reader.maxInFlight),
      MAX_RETRIES: "5",
      CLAIM_IDLE_MS: "120000",
      MAX_RECORD_BYTES: String(production.reader.maxRecordBytes),
      HEALTH_PORT: "8080",
      LOG_LEVEL: "info",
      POWERTOOLS_SERVICE_NAME: SERVICE_NAMES.reader,
    });
  });

  it("gives the reader a drain budget that outlasts an invocation and fits the stop timeout", () => {
    const drainMs = Number(readerEnvironment(production).DRAIN_TIMEOUT_MS);
    expect(drainMs).toBeGreaterThan(production.scorer.timeoutSeconds * 1000);
    expect(drainMs).toBeLessThan(production.reader.stopTimeoutSeconds * 1000);
  });

  it("tags every runtime's metrics with the namespace and stage the alarms read", () => {
    for (const env of [
      readerEnvironment(production),
      scorerEnvironment(production),
      alerterEnvironment(production),
    ]) {
      expect(env.POWERTOOLS_METRICS_NAMESPACE).toBe(METRICS_NAMESPACE);
      expect(env.STAGE).toBe("production");
    }
  });

  it("gives the scorer the same record limit the reader batches by", () => {
    expect(scorerEnvironment(production).MAX_RECORD_BYTES).toBe(
      readerEnvironment(production).MAX_RECORD_BYTES,
    );
    expect(scorerEnvironment(production)).toMatchObject({
      INFLUXDB_ORG: "waf-org",
      INFLUXDB_BUCKET: "waf-realtime",
      INFLUXDB_API: "v2",
    });
  });

  it("puts no secret in plain environment", () => {
    const names = [
      ...Object.keys(readerEnvironment(production)),
      ...Object.keys(scorerEnvironment(production)),
      ...Object.keys(alerterEnvironment(production)),
    ];
    for (const name of names) {
      expect(name).not.toMatch(/TOKEN|SECRET|WEBHOOK_URL|ROUTING_KEY|HASH_KEY|REDIS_URL|PASSWORD/);
    }
  });

  it("gives the alerter its notification settings and both functions the same threat-intel ones", () => {
    const cfg = resolveStage("staging", {
      notifications: { emailFrom: "waf@example.com", emailTo: "soc@example.com" },
      threatIntel: { reputationSetKey: "waf:threat-intel", repeatOffenderThreshold: 20 },
    });
    const alerter = alerterEnvironment(cfg);
    expect(alerter).toMatchObject({
      ALERT_THROTTLE_S: "300",
      PAGERDUTY_MIN_SEVERITY: "90",
      SLACK_MIN_SEVERITY: "80",
      ALERT_EMAIL_FROM: "waf@example.com",
      ALERT_EMAIL_TO: "soc@example.com",
    });
    const scorer = scorerEnvironment(cfg);
    for (const key of [
      "REPUTATION_SET_KEY",
      "REPEAT_OFFENDER_THRESHOLD",
      "REPEAT_OFFENDER_WINDOW_S",
    ]) {
      expect(scorer[key]).toBe(alerter[key]);
    }
    expect(scorer.REPEAT_OFFENDER_THRESHOLD).toBe("20");
  });
});
