/**
 * Format 3: Coraza JSON audit log (SPEC §2).
 * Top-level `messages[].{message, data.{id, severity, msg, tags, …}}` beside
 * `transaction.{id, timestamp, unix_timestamp, client_ip, request, response.status, is_interrupted}`;
 * ids and severities are integers, `unix_timestamp` is in nanoseconds (above 2^53), header values are arrays.
 */
import { z } from "zod";
import {
  anomalyScore,
  classification,
  clientIp,
  type Fast,
  fastCommon,
  fastStatusCode,
  fastTxId,
  INVALID,
  isRecord,
  optString,
  ruleId,
  severity,
  statusCode,
  txId,
} from "./fields.ts";
import { PRECISION_MS, parseCorazaTime, parseUnixTimestamp } from "./time.ts";
import type { WafEvent } from "./types.ts";

const message = z.object({
  message: optString,
  data: z.object({ id: ruleId, severity, msg: optString }).nullish(),
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
    messages: (rec.messages ?? []).map((m) => ({
      ruleId: m.data?.id,
      severity: m.data?.severity,
      message: m.message ?? undefined,
      msg: m.data?.msg ?? undefined,
    })),
    timeNs: parseUnixTimestamp(tx.unix_timestamp) ?? parseCorazaTime(tx.timestamp),
    timePrecisionNs: PRECISION_MS,
    method: tx.request?.method ?? undefined,
    uri: tx.request?.uri ?? undefined,
    hostname: typeof tx.request?.host === "string" ? tx.request.host : undefined,
    responseCode: tx.response?.status,
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
  };
}
