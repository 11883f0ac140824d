/**
 * The scoring function's use case (reference §5): a batch of stream records in; points
 * written, critical alerts durably queued, campaign windows counted; `{ batchItemFailures,
 * rejected }` out.
 *
 * - An alert never depends on its point: points are written and alerts queued side by side,
 *   so a point the database refuses for good (an attacker filling InfluxDB's per-tag value cap,
 *   a malformed line) still alerts. Such a record is rejected with the database's reason — its
 *   alert having been queued — and counted (`pointsRefused`), which the scorer alarms on.
 * - A record is done only when its point was accepted and, when critical, its alert queued.
 *   Everything transient fails (the reader retries it); a retried record re-queues its alert,
 *   which the alert list deduplicates by tx_id.
 * - Campaigns: every valid event counts toward its client's window; a window that fires raises
 *   one campaign alert, queued with the event alerts. If counting or queueing fails, that
 *   client's records fail, and their redelivery raises it then (the window is the record's
 *   stream entry time, so a retry lands in the same window, and the store answers a redelivered
 *   transaction of a fired window with the alert again; the alert list keeps one).
 */
import type { Alert } from "../alert/alert.ts";
import { type AlertQueue, packAlerts } from "../alert/alert-queue.ts";
import {
  type CampaignEvent,
  campaignEventOf,
  groupCampaignEvents,
  toCampaignAlert,
} from "../alert/campaign.ts";
import type { CampaignGroup, RaisedCampaign } from "../alert/campaign-store.ts";
import type { WafEvent } from "../event/types.ts";
import type { PointLine, PointWriter, WriteOutcome } from "../metrics/writer.ts";
import { outputsOf, type ScorerSettings, scoreRecord } from "../scorer.ts";
import type { Score } from "../scoring/score.ts";
import type { ScoreRequest, ScoreResponse } from "../stream/contract.ts";
import { parseStreamId, streamIdMs } from "../stream/entry.ts";

/** Counts campaign windows (core/alert/campaign-store.ts in Redis). */
export interface CampaignTracker {
  /** Resolves with the windows whose campaign alert must be raised now; rejects on failure. */
  apply(groups: readonly CampaignGroup[]): Promise<RaisedCampaign[]>;
}

export interface BatchDeps {
  settings: ScorerSettings;
  writer: PointWriter;
  alerts: AlertQueue;
  /** Campaign windows; without it (or with campaigns off) no campaign alert is raised. */
  campaigns?: CampaignTracker;
  /** Called once per scored event (logging, metrics). */
  onScored?: (id: string, event: WafEvent, score: Score) => void;
  onRejected?: (id: string, reason: string) => void;
  onFailed?: (id: string, reason: string) => void;
  /** Called for each campaign alert raised. */
  onCampaign?: (alert: Alert) => void;
}

export interface BatchSummary {
  scored: number;
  rejected: number;
  failed: number;
  /** Event and campaign alerts queued. */
  alerts: number;
  campaigns: number;
  /** Points the database refused for good (their records are rejected; their alerts went out). */
  pointsRefused: number;
}

/** Processes one batch. Never throws for a record's sake; a dependency bug may still throw. */
export async function scoreBatch(
  request: ScoreRequest,
  deps: BatchDeps,
): Promise<ScoreResponse & { summary: BatchSummary }> {
  const rejected = new Map<string, string>();
  const failed = new Map<string, string>();
  const lines: PointLine[] = [];
  const alerts: Array<{ ids: string[]; alert: Alert }> = [];
  const campaignEvents: Array<{ id: string; event: CampaignEvent; nowMs: number }> = [];
  const { settings } = deps;

  for (const record of request.records) {
    const scored = scoreRecord(record.data, settings);
    if (!scored.ok) {
      rejected.set(record.id, scored.reason);
      continue;
    }
    // A redriven record keeps the time key of the entry it first arrived as (its own point).
    const timeKey =
      record.originId !== undefined && parseStreamId(record.originId) ? record.originId : record.id;
    const { line, alert } = outputsOf(scored, timeKey, settings.privacy, settings.ipAs, {
      index: record.shard ?? 0,
      shards: settings.shards ?? 1,
    });
    lines.push({ key: record.id, line });
    if (alert) alerts.push({ ids: [record.id], alert });
    const campaignEvent = campaignEventOf(scored.event, scored.score);
    const nowMs = streamIdMs(record.id);
    if (campaignEvent && nowMs !== undefined) {
      campaignEvents.push({ id: record.id, event: campaignEvent, nowMs });
    }
    deps.onScored?.(record.id, scored.event, scored.score);
  }

  // Points and alerts side by side: neither waits for the other.
  const [outcomes, campaignAlerts] = await Promise.all([
    lines.length > 0 ? deps.writer.write(lines) : Promise.resolve([] as WriteOutcome[]),
    raiseCampaigns(campaignEvents, deps, failed),
  ]);
  alerts.push(...campaignAlerts);
  const queued = await queueAlerts(alerts, deps.alerts, failed);

  // A line the writer gave no outcome is not known to be stored: never report it done.
  const answered = new Set(outcomes.map((o) => o.key));
  for (const l of lines) {
    if (!answered.has(l.key)) failed.set(l.key, "InfluxDB write failed: no outcome for the point");
  }
  let pointsRefused = 0;
  for (const o of outcomes) {
    if (o.status === "rejected") {
      pointsRefused++;
      // Dead-lettered with the database's reason, but only once its alert (if any) is queued.
      if (!failed.has(o.key)) rejected.set(o.key, `InfluxDB refused the point: ${o.reason}`);
    } else if (o.status === "failed") failed.set(o.key, `InfluxDB write failed: ${o.reason}`);
  }
  for (const id of failed.keys()) rejected.delete(id);

  for (const [id, reason] of rejected) deps.onRejected?.(id, reason);
  for (const [id, reason] of failed) deps.onFailed?.(id, reason);
  return {
    batchItemFailures: [...failed.keys()].map((itemIdentifier) => ({ itemIdentifier })),
    rejected: [...rejected].map(([itemIdentifier, reason]) => ({ itemIdentifier, reason })),
    summary: {
      scored: lines.length,
      rejected: rejected.size,
      failed: failed.size,
      alerts: queued,
      campaigns: campaignAlerts.length,
      pointsRefused,
    },
  };
}

/**
 * Counts the batch's events in their clients' windows and returns the campaign alerts to raise,
 * each with the records whose redelivery would raise it again. On failure those records fail.
 */
async function raiseCampaigns(
  items: Array<{ id: string; event: CampaignEvent; nowMs: number }>,
  deps: BatchDeps,
  failed: Map<string, string>,
): Promise<Array<{ ids: string[]; alert: Alert }>> {
  const { campaigns: tracker, settings } = deps;
  if (!tracker || items.length === 0) return [];
  const groups = groupCampaignEvents(items, settings.campaigns, settings.privacy);
  if (groups.length === 0) return [];
  // Which records belong to which window, and the latest of their times.
  const byTx = new Map(items.map((i) => [i.event.txId, i]));
  const windows = new Map<string, { ids: string[]; lastMs: number }>();
  for (const g of groups) {
    const members = g.events.map((e) => byTx.get(e.txId)).filter((i) => i !== undefined);
    windows.set(`${g.clientKey} ${g.windowStart}`, {
      ids: members.map((m) => m.id),
      lastMs: Math.max(...members.map((m) => m.nowMs)),
    });
  }
  let raised: RaisedCampaign[];
  try {
    raised = await tracker.apply(groups);
  } catch (err) {
    const reason = `campaign windows not counted: ${(err as Error)?.name ?? "error"}`;
    for (const i of items) failed.set(i.id, reason);
    return [];
  }
  return raised.map((r) => {
    const w = windows.get(`${r.clientKey} ${r.windowStart}`);
    const alert = toCampaignAlert(
      r.figures,
      {
        clientKey: r.clientKey,
        windowStart: r.windowStart,
        windowSeconds: settings.campaigns.windowSeconds,
        nowMs: w?.lastMs ?? r.windowStart * 1000,
      },
      settings.privacy,
    );
    deps.onCampaign?.(alert);
    return { ids: w?.ids ?? [], alert };
  });
}

/** Queues the alerts; the records of a payload that could not be queued fail. Returns how many were queued. */
async function queueAlerts(
  alerts: Array<{ ids: string[]; alert: Alert }>,
  queue: AlertQueue,
  failed: Map<string, string>,
): Promise<number> {
  if (alerts.length === 0) return 0;
  const idsByTx = new Map<string, string[]>();
  for (const { ids, alert } of alerts) {
    idsByTx.set(alert.tx_id, [...(idsByTx.get(alert.tx_id) ?? []), ...ids]);
  }
  const payloads = packAlerts(alerts.map((a) => a.alert));
  const results = await Promise.allSettled(payloads.map((p) => queue.enqueue(p)));
  let queued = 0;
  results.forEach((r, i) => {
    const payload = payloads[i];
    if (!payload) return;
    if (r.status === "fulfilled") {
      queued += payload.txIds.length;
      return;
    }
    // Our adapters word their errors as fixed text (no endpoint, no input).
    const reason = `alert not queued: ${(r.reason as Error)?.message ?? "error"}`;
    for (const tx of payload.txIds) for (const id of idsByTx.get(tx) ?? []) failed.set(id, reason);
  });
  return queued;
}
