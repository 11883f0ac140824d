/**
 * Splitting a batch's alerts into payloads for asynchronous invocations of the alert
 * function: each payload stays below Lambda's 256 KB limit for `Event` invocations.
 */
import type { Alert } from "./alert.ts";

/** Lambda's asynchronous-invocation payload limit (256 KB), with room for the envelope. */
export const MAX_ASYNC_PAYLOAD_BYTES = 256 * 1024 - 1024;

export interface AlertRequest {
  alerts: Alert[];
}

/** A payload and the tx_ids it carries. */
export interface AlertPayload {
  body: string;
  txIds: string[];
}

/**
 * Packs alerts into `{"alerts":[…]}` bodies of at most `maxBytes` UTF-8 bytes each. An alert
 * too large on its own (only possible with an absurd limit) still gets a payload of its own.
 */
export function packAlerts(
  alerts: readonly Alert[],
  maxBytes = MAX_ASYNC_PAYLOAD_BYTES,
): AlertPayload[] {
  const out: AlertPayload[] = [];
  const head = '{"alerts":[';
  const tail = "]}";
  let parts: string[] = [];
  let ids: string[] = [];
  let size = head.length + tail.length;
  for (const a of alerts) {
    const json = JSON.stringify(a);
    const bytes = Buffer.byteLength(json) + (parts.length > 0 ? 1 : 0);
    if (parts.length > 0 && size + bytes > maxBytes) {
      out.push({ body: head + parts.join(",") + tail, txIds: ids });
      parts = [];
      ids = [];
      size = head.length + tail.length;
    }
    size += Buffer.byteLength(json) + (parts.length > 0 ? 1 : 0);
    parts.push(json);
    ids.push(a.tx_id);
  }
  if (parts.length > 0) out.push({ body: head + parts.join(",") + tail, txIds: ids });
  return out;
}

/** Queues alert payloads for the alert function (on AWS: an `Event` invocation). */
export interface AlertQueue {
  /** Resolves once the payload is durably queued; rejects otherwise. */
  enqueue(payload: AlertPayload): Promise<void>;
}
