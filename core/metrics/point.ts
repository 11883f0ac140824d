/**
 * The InfluxDB point of an event (SPEC §4):
 * `waf_events,client_ip=<ip>,rule_id=<id>,severity_level=<level> anomaly_score=<int>i,severity=<int>i,response_code=<int>i <ns>`
 * and the timestamp scheme that keeps distinct events apart while a redelivered event
 * rewrites its own point.
 */

import { Point } from "@influxdata/influxdb-client";
import type { WafEvent } from "../event/types.ts";
import type { PrivacyConfig } from "../privacy/privacy.ts";
import { maskIp } from "../privacy/privacy.ts";
import type { Score } from "../scoring/score.ts";
import { parseStreamId } from "../stream/entry.ts";

export const MEASUREMENT = "waf_events";

/**
 * A {@link Point} that writes its fields in the order they were added. The stock class
 * sorts fields by name; the SPEC's line puts `severity` before `response_code`. Line
 * protocol does not care about field order, people reading it do.
 */
export class OrderedPoint extends Point {
  override toLineProtocol(settings?: Parameters<Point["toLineProtocol"]>[0]): string | undefined {
    return (settings === undefined && this.directLine()) || this.reorderedLine(settings);
  }

  /**
   * The line written straight from the point's parts, for the common case: no settings, field
   * names that need no escaping, a timestamp given as text. Exactly what
   * {@link reorderedLine} makes of such a point, without building the sorted line first.
   * Undefined when the point is not that simple.
   */
  private directLine(): string | undefined {
    const self = this as unknown as { name?: string; tags: Record<string, string>; time: unknown };
    if (!self.name || typeof self.time !== "string") return undefined;
    let fields = "";
    for (const name of Object.keys(this.fields)) {
      if (name === "" || NEEDS_TAG_ESCAPE.test(name)) return undefined;
      fields += `${fields === "" ? "" : ","}${name}=${this.fields[name]}`;
    }
    if (fields === "") return undefined;
    let line = escapeWith(self.name, NEEDS_MEASUREMENT_ESCAPE);
    for (const key of Object.keys(self.tags).sort()) {
      const value = self.tags[key];
      if (key && value) {
        line += `,${escapeWith(key, NEEDS_TAG_ESCAPE)}=${escapeWith(value, NEEDS_TAG_ESCAPE)}`;
      }
    }
    return self.time === "" ? `${line} ${fields}` : `${line} ${fields} ${self.time}`;
  }

  /** The stock line (fields sorted by name), its field set rebuilt in insertion order. */
  private reorderedLine(settings?: Parameters<Point["toLineProtocol"]>[0]): string | undefined {
    const sorted = super.toLineProtocol(settings);
    if (sorted === undefined) return undefined;
    const names = Object.keys(this.fields);
    if (names.length < 2) return sorted;
    // The stock line is "<measurement+tags> <sorted fields>[ <time>]"; rebuild the field set.
    const fieldsSorted = [...names]
      .sort()
      .map((n) => `${escapeKey(n)}=${this.fields[n]}`)
      .join(",");
    const fieldsOrdered = names.map((n) => `${escapeKey(n)}=${this.fields[n]}`).join(",");
    const at = sorted.indexOf(` ${fieldsSorted}`);
    if (at === -1) return sorted;
    return `${sorted.slice(0, at)} ${fieldsOrdered}${sorted.slice(at + 1 + fieldsSorted.length)}`;
  }
}

function escapeKey(key: string): string {
  return key.replace(/[ ,=]/g, (c) => `\\${c}`);
}

/** The characters the client escapes in tag keys and values (and field names), and in measurements. */
const NEEDS_TAG_ESCAPE = /[, =\n\r\t]/;
const NEEDS_MEASUREMENT_ESCAPE = /[, \n\r\t]/;
const ESCAPES: Readonly<Record<string, string>> = {
  ",": "\\,",
  " ": "\\ ",
  "=": "\\=",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

/** Escapes like `@influxdata/influxdb-client`'s `escape.tag` / `escape.measurement`. */
function escapeWith(value: string, needs: RegExp): string {
  if (!needs.test(value)) return value;
  const all = new RegExp(needs.source, "g");
  return value.replace(all, (c) => ESCAPES[c] as string);
}

/** 53-bit string hash (cyrb53): deterministic, fast, no crypto needed. */
export function hash53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * The point's timestamp in nanoseconds. Pure function of (event, stream entry ID), so a
 * redelivered event lands on its own point again.
 *
 * - With the event's own time: that time truncated to the precision the record carries
 *   (a second for ModSecurity, a millisecond for Coraza) plus an offset inside that unit
 *   derived from the transaction ID. Two distinct events in the same second and series get
 *   distinct timestamps unless their IDs collide in ~30 bits (1e9 slots).
 * - Without one (the envelope): the stream entry's time, `ms·1e6 + (seq mod 1000)·1e3 +
 *   hash(tx_id) mod 1e3`, so entries of one millisecond never collide (below 1000 per ms).
 */
export function pointTimeNs(event: WafEvent, streamId: string | undefined): bigint {
  const h = BigInt(hash53(event.txId));
  if (event.timeNs !== undefined) {
    const p = event.timePrecisionNs;
    return event.timeNs - (event.timeNs % p) + (h % p);
  }
  const sid = streamId === undefined ? undefined : parseStreamId(streamId);
  if (!sid) throw new Error("an event without its own time needs its stream entry ID");
  return sid.ms * 1_000_000n + (sid.seq % 1000n) * 1000n + (h % 1000n);
}

/** Unix seconds of the event (its own time, else its stream entry's). */
export function eventUnixSeconds(event: WafEvent, streamId: string | undefined): number {
  if (event.timeNs !== undefined) return Number(event.timeNs / 1_000_000_000n);
  const sid = streamId === undefined ? undefined : parseStreamId(streamId);
  return sid ? Number(sid.ms / 1000n) : 0;
}

/**
 * Builds the event's point. The client IP is masked per `IP_MASKING` (reputation was
 * decided before, on the real address).
 */
export function toPoint(
  event: WafEvent,
  score: Score,
  streamId: string | undefined,
  privacy: PrivacyConfig,
): OrderedPoint {
  return new OrderedPoint(MEASUREMENT)
    .tag("client_ip", maskIp(event.clientIp, privacy))
    .tag("rule_id", score.ruleId)
    .tag("severity_level", score.level)
    .intField("anomaly_score", score.anomalyScore)
    .intField("severity", score.severity)
    .intField("response_code", event.responseCode ?? 0)
    .timestamp(String(pointTimeNs(event, streamId))) as OrderedPoint;
}
