/**
 * Format 1: the upstream router's envelope (SPEC §2).
 * `transaction.{id, client_ip, anomaly_score, request.{uri,method}, messages[].details.{ruleId,msg}}`,
 * optional `classification.{track,rule_id}`. It carries no time of its own.
 */
import { z } from "zod";
import {
  anomalyScore,
  classification,
  clientIp,
  optString,
  ruleId,
  severity,
  txId,
} from "./fields.ts";
import { PRECISION_MS } from "./time.ts";
import type { WafEvent } from "./types.ts";

const message = z.object({
  message: optString,
  details: z.object({ ruleId, msg: optString, severity }).nullish(),
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

export function envelopeToEvent(rec: z.output<typeof envelopeSchema>): WafEvent {
  const tx = rec.transaction;
  const code = tx.response?.http_code ?? tx.response?.status;
  return {
    format: "envelope",
    txId: tx.id,
    clientIp: tx.client_ip,
    anomalyScore: tx.anomaly_score,
    classificationRuleId: rec.classification?.rule_id,
    messages: (tx.messages ?? []).map((m) => ({
      ruleId: m.details?.ruleId,
      severity: m.details?.severity,
      message: m.message ?? undefined,
      msg: m.details?.msg ?? undefined,
    })),
    timeNs: undefined,
    timePrecisionNs: PRECISION_MS,
    method: tx.request?.method ?? undefined,
    uri: tx.request?.uri ?? undefined,
    hostname: tx.request?.hostname ?? undefined,
    responseCode:
      typeof code === "number" && Number.isInteger(code) && code >= 0 && code < 1000
        ? code
        : undefined,
  };
}
