/**
 * Format 1: the upstream router's envelope (reference §2).
 * `transaction.{id, client_ip, anomaly_score, request.{uri,method}, messages[].details.{ruleId,msg}}`,
 * optional `classification.{track,rule_id}`. It carries no time of its own.
 */
import { z } from "zod";
import {
  anomalyScore,
  bareMatch,
  classification,
  clientIp,
  type Fast,
  fastCommon,
  fastOptString,
  fastTxId,
  INVALID,
  isRecord,
  optString,
  ruleId,
  ruleMatch,
  severity,
  txId,
} from "./fields.ts";
import { PRECISION_MS } from "./time.ts";
import type { WafEvent } from "./types.ts";

const message = z.object({
  message: optString,
  details: z
    .object({
      ruleId,
      msg: optString,
      severity,
      tags: z.unknown().optional(),
      match: z.unknown().optional(),
    })
    .nullish(),
});

export const envelopeSchema = z.object({
  transaction: z.object({
    id: txId,
    client_ip: clientIp,
    anomaly_score: anomalyScore,
    request: z.object({ uri: optString, method: optString, hostname: optString }).nullish(),
    response: z
      .object({ http_code: z.unknown().optional(), status: z.unknown().optional() })
      .nullish(),
    messages: z.array(message).nullish(),
  }),
  classification,
});

function responseCode(code: unknown): number | undefined {
  return typeof code === "number" && Number.isInteger(code) && code >= 0 && code < 1000
    ? code
    : undefined;
}

export function envelopeToEvent(rec: z.output<typeof envelopeSchema>): WafEvent {
  const tx = rec.transaction;
  const code = tx.response?.http_code ?? tx.response?.status;
  return {
    format: "envelope",
    txId: tx.id,
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
    timeNs: undefined,
    timePrecisionNs: PRECISION_MS,
    method: tx.request?.method ?? undefined,
    uri: tx.request?.uri ?? undefined,
    hostname: tx.request?.hostname ?? undefined,
    responseCode: responseCode(code),
    engineMode: undefined,
    interrupted: undefined,
  };
}

/**
 * {@link envelopeSchema} then {@link envelopeToEvent} in one pass, without zod, for a record
 * that is certainly valid; `INVALID` when in doubt (the caller then asks the schema).
 */
export function envelopeFast(rec: Record<string, unknown>): Fast<WafEvent> {
  const tx = rec.transaction;
  if (!isRecord(tx)) return INVALID;
  const id = fastTxId(tx.id);
  if (id === INVALID) return INVALID;
  const c = fastCommon(rec, tx, tx.messages, "details", "ruleId");
  if (c === INVALID) return INVALID;
  const { clientIp, anomalyScore, classificationRuleId, request, response, messages, method, uri } =
    c;
  const hostname = request === undefined ? undefined : fastOptString(request.hostname);
  if (hostname === INVALID) return INVALID;
  return {
    format: "envelope",
    txId: id,
    clientIp,
    anomalyScore,
    classificationRuleId,
    messages,
    timeNs: undefined,
    timePrecisionNs: PRECISION_MS,
    method,
    uri,
    hostname,
    responseCode: responseCode(response?.http_code ?? response?.status),
    engineMode: undefined,
    interrupted: undefined,
  };
}
