/**
 * Format 3: Coraza JSON audit log (reference §2).
 * Top-level `messages[].{message, data.{id, severity, msg, tags, …}}` beside
 * `transaction.{id, timestamp, unix_timestamp, client_ip, request, response.status,
 * producer.rule_engine, is_interrupted}`;
 * ids and severities are integers, `unix_timestamp` is in nanoseconds (above 2^53), header values are arrays.
 */
import { z } from "zod";
import {
  anomalyScore,
  bareMatch,
  classification,
  clientIp,
  engineModeOf,
  type Fast,
  fastCommon,
  fastStatusCode,
  fastTxId,
  INVALID,
  interruptedOf,
  isRecord,
  optString,
  ruleId,
  ruleMatch,
  severity,
  statusCode,
  txId,
} from "./fields.ts";
import { PRECISION_MS, parseCorazaTime, parseUnixTimestamp } from "./time.ts";
import type { WafEvent } from "./types.ts";

const message = z.object({
  message: optString,
  data: z
    .object({
      id: ruleId,
      severity,
      msg: optString,
      tags: z.unknown().optional(),
      match: z.unknown().optional(),
    })
    .nullish(),
});

export const corazaSchema = z.object({
  transaction: z.object({
    id: txId,
    client_ip: clientIp,
    timestamp: z.unknown().optional(),
    // Not z.number(): a safe-integer check would reject every real Coraza record.
    unix_timestamp: z.unknown().optional(),
    anomaly_score: anomalyScore,
    request: z
      .object({ method: optString, uri: optString, host: z.unknown().optional() })
      .nullish(),
    response: z.object({ status: statusCode }).nullish(),
    producer: z.unknown().optional(),
    is_interrupted: z.unknown().optional(),
  }),
  messages: z.array(message).nullish(),
  classification,
});

export function corazaToEvent(rec: z.output<typeof corazaSchema>): WafEvent {
  const tx = rec.transaction;
  return {
    format: "coraza",
    txId: tx.id,
    clientIp: tx.client_ip,
    anomalyScore: tx.anomaly_score,
    classificationRuleId: rec.classification?.rule_id,
    messages: (rec.messages ?? []).map((m) =>
      m.data
        ? ruleMatch(
            m.data.id,
            m.data.severity,
            m.message ?? undefined,
            m.data.msg ?? undefined,
            m.data.tags,
            m.data.match,
          )
        : bareMatch(m.message ?? undefined),
    ),
    timeNs: parseUnixTimestamp(tx.unix_timestamp) ?? parseCorazaTime(tx.timestamp),
    timePrecisionNs: PRECISION_MS,
    method: tx.request?.method ?? undefined,
    uri: tx.request?.uri ?? undefined,
    hostname: typeof tx.request?.host === "string" ? tx.request.host : undefined,
    responseCode: tx.response?.status,
    engineMode: engineModeOf(tx.producer, "rule_engine"),
    interrupted: interruptedOf(tx.is_interrupted),
  };
}

/**
 * {@link corazaSchema} then {@link corazaToEvent} in one pass, without zod, for a record that
 * is certainly valid; `INVALID` when in doubt (the caller then asks the schema).
 */
export function corazaFast(rec: Record<string, unknown>): Fast<WafEvent> {
  const tx = rec.transaction;
  if (!isRecord(tx)) return INVALID;
  const id = fastTxId(tx.id);
  if (id === INVALID) return INVALID;
  const c = fastCommon(rec, tx, rec.messages, "data", "id");
  if (c === INVALID) return INVALID;
  const { clientIp, anomalyScore, classificationRuleId, request, response, messages, method, uri } =
    c;
  const host = request?.host;
  return {
    format: "coraza",
    txId: id,
    clientIp,
    anomalyScore,
    classificationRuleId,
    messages,
    timeNs: parseUnixTimestamp(tx.unix_timestamp) ?? parseCorazaTime(tx.timestamp),
    timePrecisionNs: PRECISION_MS,
    method,
    uri,
    hostname: typeof host === "string" ? host : undefined,
    responseCode: response === undefined ? undefined : fastStatusCode(response.status),
    engineMode: engineModeOf(tx.producer, "rule_engine"),
    interrupted: interruptedOf(tx.is_interrupted),
  };
}
