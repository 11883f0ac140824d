/**
 * The scoring function's use case (docs/reference.md, "Delivery"): a batch of stream records in; points written
 * and accepted, critical alerts durably queued; `{ batchItemFailures, rejected }` out.
 *
 * A record is done (neither failed nor rejected) only when its point was accepted and, when
 * critical, its alert was queued. Invalid records and points the database refuses for good
 * are rejected with a reason (the reader dead-letters them); everything transient fails
 * (the reader retries it).
 */
import type { Alert } from "../alert/alert.ts";
import { type AlertQueue, packAlerts } from "../alert/alert-queue.ts";
import type { WafEvent } from "../event/types.ts";
import type { PointLine, PointWriter } from "../metrics/writer.ts";
import { outputsOf, type ScorerSettings, scoreRecord } from "../scorer.ts";
import type { Score } from "../scoring/score.ts";
import type { ScoreRequest, ScoreResponse } from "../stream/contract.ts";
import { parseStreamId } from "../stream/entry.ts";

export interface BatchDeps {
  settings: ScorerSettings;
  writer: PointWriter;
  alerts: AlertQueue;
  /** Called once per scored event (logging, metrics). */
  onScored?: (id: string, event: WafEvent, score: Score) => void;
  onRejected?: (id: string, reason: string) => void;
  onFailed?: (id: string, reason: string) => void;
}

export interface BatchSummary {
  scored: number;
  rejected: number;
  failed: number;
  alerts: number;
}

/** Processes one batch. Never throws for a record's sake; a dependency bug may still throw. */
export async function scoreBatch(
  request: ScoreRequest,
  deps: BatchDeps,
): Promise<ScoreResponse & { summary: BatchSummary }> {
  const rejected: ScoreResponse["rejected"] = [];
  const failed = new Map<string, string>();
  const lines: PointLine[] = [];
  const alertsById = new Map<string, Alert>();

  for (const record of request.records) {
    const scored = scoreRecord(record.data, deps.settings);
    if (!scored.ok) {
      rejected.push({ itemIdentifier: record.id, reason: scored.reason });
      deps.onRejected?.(record.id, scored.reason);
      continue;
    }
    // A redriven record keeps the time key of the entry it first arrived as (its own point).
    const timeKey =
      record.originId !== undefined && parseStreamId(record.originId) ? record.originId : record.id;
    const { line, alert } = outputsOf(scored, timeKey, deps.settings.privacy);
    lines.push({ key: record.id, line });
    if (alert) alertsById.set(record.id, alert);
    deps.onScored?.(record.id, scored.event, scored.score);
  }

  const accepted: string[] = [];
  if (lines.length > 0) {
    const outcomes = await deps.writer.write(lines);
    // A line the writer gave no outcome is not known to be stored: never report it done.
    const answered = new Set(outcomes.map((o) => o.key));
    for (const l of lines) {
      if (!answered.has(l.key))
        failed.set(l.key, "InfluxDB write failed: no outcome for the point");
    }
    for (const o of outcomes) {
      if (o.status === "accepted") accepted.push(o.key);
      else if (o.status === "rejected") {
        const reason = `InfluxDB refused the point: ${o.reason}`;
        rejected.push({ itemIdentifier: o.key, reason });
        deps.onRejected?.(o.key, reason);
      } else failed.set(o.key, `InfluxDB write failed: ${o.reason}`);
    }
  }

  // Alerts only for events whose point landed: a record that fails is retried whole, and the
  // alert function lists each tx_id once, so a retry never doubles an alert.
  const alerts: Array<{ id: string; alert: Alert }> = [];
  for (const id of accepted) {
    const alert = alertsById.get(id);
    if (alert) alerts.push({ id, alert });
  }
  let queued = 0;
  if (alerts.length > 0) {
    const idsByTx = new Map<string, string[]>();
    for (const { id, alert } of alerts) {
      const list = idsByTx.get(alert.tx_id) ?? [];
      list.push(id);
      idsByTx.set(alert.tx_id, list);
    }
    const payloads = packAlerts(alerts.map((a) => a.alert));
    const results = await Promise.allSettled(payloads.map((p) => deps.alerts.enqueue(p)));
    results.forEach((r, i) => {
      const payload = payloads[i];
      if (!payload) return;
      if (r.status === "fulfilled") {
        queued += payload.txIds.length;
        return;
      }
      const reason = `alert not queued: ${(r.reason as Error)?.message ?? String(r.reason)}`;
      for (const tx of payload.txIds)
        for (const id of idsByTx.get(tx) ?? []) failed.set(id, reason);
    });
  }

  for (const [id, reason] of failed) deps.onFailed?.(id, reason);
  return {
    batchItemFailures: [...failed.keys()].map((itemIdentifier) => ({ itemIdentifier })),
    rejected,
    summary: {
      scored: lines.length,
      rejected: rejected.length,
      failed: failed.size,
      alerts: queued,
    },
  };
}
