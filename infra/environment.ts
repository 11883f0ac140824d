/**
 * The non-secret configuration each runtime gets, as reference §6 environment variables built from
 * the stage's settings. Pure (no SST import), so `environment.test.ts` can check it.
 * Values that only exist after deploy (function names, a managed InfluxDB's URL) and secrets
 * (linked `sst.Secret`s, read at runtime as `Resource.<Name>.value`) are added by the infra files.
 *
 * Metric contract: every custom metric is published in EMF (Powertools Metrics) under
 * {@link METRICS_NAMESPACE} with exactly the dimensions `service` (Powertools adds it from
 * `POWERTOOLS_SERVICE_NAME`) and `stage` (from `STAGE`); the alarms match those two dimensions.
 */
import { drainSeconds, redisModeOf, type StageConfig } from "./stages.ts";

export const METRICS_NAMESPACE = "WafEventProcessor";

export const SERVICE_NAMES = {
  reader: "waf-reader",
  scorer: "waf-scorer",
  alerter: "waf-alerter",
} as const;

function common(cfg: StageConfig, service: string): Record<string, string> {
  return {
    LOG_LEVEL: cfg.logLevel,
    STAGE: cfg.stage,
    POWERTOOLS_SERVICE_NAME: service,
    POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
    ...redisEnvironment(cfg),
  };
}

/**
 * Every runtime opens Redis the same way and names the same stream keys: one `STREAM_SHARDS`
 * for the reader, the scorer and the alerter, and `REDIS_MODE` when the stage knows its topology
 * (a managed cluster); otherwise the runtime detects it at start (`INFO cluster`).
 */
function redisEnvironment(cfg: StageConfig): Record<string, string> {
  const mode = redisModeOf(cfg);
  return {
    STREAM_SHARDS: String(cfg.stream.shards),
    ...(mode ? { REDIS_MODE: mode } : {}),
  };
}

/** The stream reader (Fargate). `SCORER_FUNCTION` is added by `infra/reader.ts`. */
export function readerEnvironment(cfg: StageConfig): Record<string, string> {
  const { stream, reader } = cfg;
  return {
    ...common(cfg, SERVICE_NAMES.reader),
    STREAM_KEY: stream.key,
    STREAM_FIELD: stream.field,
    CONSUMER_GROUP: stream.group,
    DLQ_STREAM_KEY: stream.dlqKey,
    DLQ_MAXLEN: String(stream.dlqMaxLen),
    BATCH_SIZE: String(reader.batchSize),
    BATCH_WINDOW_MS: String(reader.batchWindowMs),
    MAX_IN_FLIGHT: String(reader.maxInFlight),
    MAX_RETRIES: String(reader.maxRetries),
    CLAIM_IDLE_MS: String(reader.claimIdleMs),
    MAX_RECORD_BYTES: String(reader.maxRecordBytes),
    HEALTH_PORT: String(reader.healthPort),
    // how long a SIGTERMed task waits for in-flight invocations: the scorer's timeout + margin,
    // below ECS's stopTimeout (reference §6)
    DRAIN_TIMEOUT_MS: String(drainSeconds(cfg) * 1000),
  };
}

/** The scoring function. `INFLUXDB_URL` and `ALERT_FUNCTION` are added by `infra/scorer.ts`. */
export function scorerEnvironment(cfg: StageConfig): Record<string, string> {
  return {
    ...common(cfg, SERVICE_NAMES.scorer),
    INFLUXDB_ORG: cfg.influx.org,
    INFLUXDB_BUCKET: cfg.influx.bucket,
    INFLUXDB_API: cfg.influx.api,
    INFLUX_IP_AS: cfg.influx.ipAs,
    MAX_RECORD_BYTES: String(cfg.reader.maxRecordBytes),
    IP_MASKING: cfg.ipMasking,
    ...scoringEnvironment(cfg),
    ...threatIntelEnvironment(cfg),
  };
}

/** How the scorer grades and when it raises campaign alerts (reference §3). */
function scoringEnvironment(cfg: StageConfig): Record<string, string> {
  const s = cfg.scoring;
  return {
    SCORING_PROFILE: s.profile,
    // the variable replaces the whole table: absent, the application keeps its own
    ...(s.weights ? { SCORING_WEIGHTS: JSON.stringify(s.weights) } : {}),
    CAMPAIGN_WINDOW_S: String(s.campaignWindowSeconds),
    CAMPAIGN_MIN_EVENTS: String(s.campaignMinEvents),
  };
}

/** Scorer and alerter must agree on these: one reads what the other writes. */
function threatIntelEnvironment(cfg: StageConfig): Record<string, string> {
  const t = cfg.threatIntel;
  return {
    ...(t.reputationSetKey ? { REPUTATION_SET_KEY: t.reputationSetKey } : {}),
    REPEAT_OFFENDER_THRESHOLD: String(t.repeatOffenderThreshold),
    REPEAT_OFFENDER_WINDOW_S: String(t.repeatOffenderWindowSeconds),
    REPEAT_OFFENDER_TTL_S: String(t.repeatOffenderTtlSeconds),
    REPUTATION_REFRESH_S: String(t.refreshSeconds),
  };
}

/** The alert function. */
export function alerterEnvironment(cfg: StageConfig): Record<string, string> {
  return {
    ...common(cfg, SERVICE_NAMES.alerter),
    ALERT_LIST_KEY: cfg.stream.alertListKey,
    IP_MASKING: cfg.ipMasking,
    ALERT_THROTTLE_S: String(cfg.notifications.throttleSeconds),
    ALERT_CHANNEL_RATE_PER_MIN: String(cfg.notifications.channelRatePerMinute),
    PAGERDUTY_MIN_SEVERITY: String(cfg.notifications.pagerDutyMinSeverity),
    SLACK_MIN_SEVERITY: String(cfg.notifications.slackMinSeverity),
    WEBHOOK_MIN_SEVERITY: String(cfg.notifications.webhookMinSeverity),
    EMAIL_MIN_SEVERITY: String(cfg.notifications.emailMinSeverity),
    NOTIFY_TIMEOUT_MS: String(cfg.notifications.timeoutMs),
    NOTIFY_DEADLINE_MS: String(cfg.notifications.deadlineMs),
    ...(cfg.notifications.emailFrom && cfg.notifications.emailTo
      ? { ALERT_EMAIL_FROM: cfg.notifications.emailFrom, ALERT_EMAIL_TO: cfg.notifications.emailTo }
      : {}),
    ...threatIntelEnvironment(cfg),
  };
}
