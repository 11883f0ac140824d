/**
 * The scoring function (reference §5): `{ records: [{ id, data, deliveryCount }] }` in,
 * `{ batchItemFailures, rejected }` out. Middleware first, the use case last.
 */

import type { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { type Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import type { Context } from "aws-lambda";
import { z } from "zod";
import type { AlertQueue } from "../core/alert/alert-queue.ts";
import { CampaignStore } from "../core/alert/campaign-store.ts";
import { alertKeys } from "../core/alert/keys.ts";
import type { Config } from "../core/config.ts";
import { logsDebug } from "../core/lib/logger.ts";
import { isCluster } from "../core/lib/redis.ts";
import { emptyTally, LevelCounts } from "../core/metrics/level-counts.ts";
import type { PointWriter } from "../core/metrics/writer.ts";
import { maskIp } from "../core/privacy/privacy.ts";
import { ReputationCache, reputationCacheOptions } from "../core/reputation/cache.ts";
import { type ScorerSettings, scorerSettingsFrom } from "../core/scorer.ts";
import type { ScoreResponse } from "../core/stream/contract.ts";
import { type CampaignTracker, scoreBatch } from "../core/use-cases/score-batch.ts";
import { createAlertQueue, createPointWriter } from "./shared/clients.ts";
import { createLambdaClient } from "./shared/lambda.ts";
import { createMetrics } from "./shared/metrics.ts";
import {
  createLogger,
  openRedis,
  readMaliciousIpsFile,
  redisMode,
  runtimeConfig,
} from "./shared/runtime.ts";

export interface ScoreDeps {
  settings: ScorerSettings;
  writer: PointWriter;
  alerts: AlertQueue;
  logger: Logger;
  /** CloudWatch EMF metrics (functions/shared/metrics.ts); optional in tests. */
  metrics?: Metrics;
  /** Per-minute counts by level for the live view (core/metrics/level-counts.ts); best effort. */
  counts?: Pick<LevelCounts, "add">;
  /** Campaign windows (core/alert/campaign-store.ts); none = no campaign alerts. */
  campaigns?: CampaignTracker;
}

const LEVEL_METRIC = {
  critical: "SeverityCritical",
  high: "SeverityHigh",
  medium: "SeverityMedium",
  low: "SeverityLow",
} as const;

const requestSchema = z.object({
  records: z.array(
    z.object({
      id: z.string().min(1),
      data: z.string(),
      deliveryCount: z.number().int().nonnegative(),
      originId: z.string().optional(),
      shard: z.number().int().min(0).max(63).optional(),
    }),
  ),
});

/** Thrown for a payload that is not a batch: a reader bug, so the invocation fails whole. */
export class InvalidBatchError extends Error {
  constructor(detail: string) {
    super(`invalid scoring request: ${detail}`);
    this.name = "InvalidBatchError";
  }
}

export function createHandler(deps: ScoreDeps) {
  const { logger, settings, metrics } = deps;
  const chain = middy<unknown, ScoreResponse, Error, Context>().use(injectLambdaContext(logger));
  if (metrics) chain.use(logMetrics(metrics));
  return chain.handler(async (event) => {
    const started = Date.now();
    const parsed = requestSchema.safeParse(event);
    if (!parsed.success) {
      throw new InvalidBatchError(parsed.error.issues[0]?.message ?? "unreadable");
    }
    const levels = emptyTally();
    // Asked once per batch: below the active level no per-record log item is built.
    const debug = logsDebug(logger);
    const { batchItemFailures, rejected, summary } = await scoreBatch(parsed.data, {
      settings,
      writer: deps.writer,
      alerts: deps.alerts,
      campaigns: deps.campaigns,
      onCampaign: (a) =>
        logger.info("campaign alert raised", {
          tx_id: a.tx_id,
          client_ip: a.client_ip,
          severity: a.severity,
          rule_id: a.rule_id,
        }),
      onScored: (id, ev, score) => {
        levels[score.level]++;
        if (!score.alert && !debug) return;
        const fields = {
          stream_id: id,
          tx_id: ev.txId,
          client_ip: maskIp(ev.clientIp, settings.privacy),
          severity: score.severity,
          severity_level: score.level,
          rule_id: score.ruleId,
        };
        if (score.alert) logger.info("critical event", fields);
        else logger.debug("event scored", fields);
      },
      onRejected: (id, reason) => logger.warn("record rejected", { stream_id: id, reason }),
      onFailed: (id, reason) => logger.warn("record failed", { stream_id: id, reason }),
    });
    logger.info("batch scored", { records: parsed.data.records.length, ...summary });
    await deps.counts
      ?.add(levels, Date.now())
      .catch((err: Error) =>
        logger.warn("could not count scored events for the live view", { error: err.name }),
      );
    if (metrics) {
      const processed = parsed.data.records.length - summary.rejected - summary.failed;
      metrics.addMetric("EventsProcessed", MetricUnit.Count, processed);
      metrics.addMetric("EventsRejected", MetricUnit.Count, summary.rejected);
      metrics.addMetric("EventsFailed", MetricUnit.Count, summary.failed);
      metrics.addMetric("AlertsQueued", MetricUnit.Count, summary.alerts);
      metrics.addMetric("CampaignsRaised", MetricUnit.Count, summary.campaigns);
      // Refused for good by the database (alarmed): the records are dead-lettered, their
      // alerts went out anyway.
      metrics.addMetric("PointsRefused", MetricUnit.Count, summary.pointsRefused);
      metrics.addMetric("BatchLatencyMs", MetricUnit.Milliseconds, Date.now() - started);
      for (const [level, n] of Object.entries(levels)) {
        metrics.addMetric(LEVEL_METRIC[level as keyof typeof LEVEL_METRIC], MetricUnit.Count, n);
      }
    }
    return { batchItemFailures, rejected };
  });
}

/** The live dependencies, from the environment. */
export async function liveDeps(config?: Config): Promise<ScoreDeps> {
  const c = config ?? (await runtimeConfig());
  const logger = createLogger("waf-scorer", c.LOG_LEVEL);
  if (!c.ALERT_FUNCTION)
    logger.warn("ALERT_FUNCTION is not set: critical events cannot be alerted");
  // Threat-intelligence set and repeat offenders: opt-in, held in memory, reloaded in the background.
  const redis = openRedis(c.REDIS_URL, await redisMode(c), {}, logger);
  const cluster = isCluster(redis);
  const reputation = reputationCacheOptions(c, { cluster });
  const sources = reputation ? [new ReputationCache(redis, { ...reputation, logger })] : [];
  await Promise.all(sources.map((s) => s.start()));
  return {
    settings: scorerSettingsFrom(c, {
      maliciousEntries: readMaliciousIpsFile(c.MALICIOUS_IPS_FILE),
      sources,
    }),
    writer: createPointWriter(c, logger),
    alerts: createAlertQueue(createLambdaClient({ maxAttempts: 3 }), c.ALERT_FUNCTION),
    logger,
    metrics: createMetrics("waf-scorer"),
    counts: new LevelCounts(redis, c.ALERT_LIST_KEY),
    campaigns:
      c.CAMPAIGN_MIN_EVENTS > 0
        ? new CampaignStore(redis, {
            prefix: alertKeys(c.ALERT_LIST_KEY, undefined, { cluster }).campaignPrefix,
            settings: { windowSeconds: c.CAMPAIGN_WINDOW_S, minEvents: c.CAMPAIGN_MIN_EVENTS },
          })
        : undefined,
  };
}

let live: Promise<ReturnType<typeof createHandler>> | undefined;

/** The Lambda entry point; dependencies are built on the first invocation and reused. */
export const handler = async (event: unknown, context: Context): Promise<ScoreResponse> => {
  live ??= liveDeps().then(createHandler);
  return (await live)(event, context);
};
