/**
 * Format 2: ModSecurity v3 native JSON audit log (reference §2).
 * `transaction.{unique_id (old versions: id), client_ip, time_stamp, request, response.http_code,
 * producer.secrules_engine, messages[].{message, details.{ruleId, severity, msg, tags, match}}}`;
 * ruleId and severity are strings.
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
  fastOptString,
  fastStatusCode,
  fastTxId,
  INVALID,
  isRecord,
  optString,
  ruleId,
  ruleMatch,
  severity,
  statusCode,
  txId,
} from "./fields.ts";
import { PRECISION_S, parseModsecTime } from "./time.ts";
import type { WafEvent } from "./types.ts";

const message = z.object({
  message: optString,
  details: z
    .object({
      ruleId,
      severity,
      msg: optString,
      tags: z.unknown().optional(),
      match: z.unknown().optional(),
    })
    .nullish(),
});

export const modsec3Schema = z.object({
  transaction: z.object({
    unique_id: txId.optional(),
    id: txId.optional(),
    client_ip: clientIp,
    time_stamp: z.unknown().optional(),
    anomaly_score: anomalyScore,
    request: z
      .object({
        method: optString,
        uri: optString,
        hostname: optString,
        http_version: z.union([z.string(), z.number()]).nullish(),
      })
      .nullish(),
    response: z.object({ http_code: statusCode }).nullish(),
    producer: z.unknown().optional(),
    messages: z.array(message).nullish(),
  }),
  classification,
});

export function modsec3ToEvent(rec: z.output<typeof modsec3Schema>, txIdValue: string): WafEvent {
  const tx = rec.transaction;
  return {
    format: "modsec3",
    txId: txIdValue,
    clientIp: tx.client_ip,
    anomalyScore: tx.anomaly_score,
    classificationRuleId: rec.classification?.rule_id,
    messages: (tx.messages ?? []).map((m) =>
      m.details
        ? ruleMatch(
            m.details.ruleId,
            m.details.severity,
            m.message ?? undefined,
            m.details.msg ?? undefined,
            m.details.tags,
            m.details.match,
          )
        : bareMatch(m.message ?? undefined),
    ),
    timeNs: parseModsecTime(tx.time_stamp),
    timePrecisionNs: PRECISION_S,
    method: tx.request?.method ?? undefined,
    uri: tx.request?.uri ?? undefined,
    hostname: tx.request?.hostname ?? undefined,
    responseCode: tx.response?.http_code,
    engineMode: engineModeOf(tx.producer, "secrules_engine"),
    interrupted: undefined,
  };
}

/**
 * {@link modsec3Schema} then {@link modsec3ToEvent} in one pass, without zod, for a record
 * that is certainly valid; `INVALID` when in doubt (the caller then asks the schema, which
 * also words the reason when neither `unique_id` nor `id` is there).
 */
export function modsec3Fast(rec: Record<string, unknown>): Fast<WafEvent> {
  const tx = rec.transaction;
  if (!isRecord(tx)) return INVALID;
  const uniqueId = tx.unique_id === undefined ? undefined : fastTxId(tx.unique_id);
  const oldId = tx.id === undefined ? undefined : fastTxId(tx.id);
  if (uniqueId === INVALID || oldId === INVALID) return INVALID;
  const id = uniqueId ?? oldId;
  if (id === undefined) return INVALID;
  const c = fastCommon(rec, tx, tx.messages, "details", "ruleId");
  if (c === INVALID) return INVALID;
  const { clientIp, anomalyScore, classificationRuleId, request, response, messages, method, uri } =
    c;
  const hostname = request === undefined ? undefined : fastOptString(request.hostname);
  const version = request?.http_version;
  if (
    hostname === INVALID ||
    !(
      version === undefined ||
      version === null ||
      typeof version === "string" ||
      Number.isFinite(version)
    )
  ) {
    return INVALID;
  }
  return {
    format: "modsec3",
    txId: id,
    clientIp,
    anomalyScore,
    classificationRuleId,
    messages,
    timeNs: parseModsecTime(tx.time_stamp),
    timePrecisionNs: PRECISION_S,
    method,
    uri,
    hostname,
    responseCode: response === undefined ? undefined : fastStatusCode(response.http_code),
    engineMode: engineModeOf(tx.producer, "secrules_engine"),
    interrupted: undefined,
  };
}
