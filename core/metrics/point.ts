/**
 * The InfluxDB point of an event (reference §4):
 * `waf_events,client_ip=<ip>,rule_id=<id>,severity_level=<level> anomaly_score=<int>i,severity=<int>i,response_code=<int>i <ns>`
 * and the timestamp scheme that keeps distinct events apart while a redelivered event
 * rewrites its own point.
 */
import { formatIp, parseIp, truncateIp } from "../event/ip.ts";
import type { WafEvent } from "../event/types.ts";
import type { PrivacyConfig } from "../privacy/privacy.ts";
import { maskIp } from "../privacy/privacy.ts";
import type { Score } from "../scoring/score.ts";
import { parseStreamId } from "../stream/entry.ts";
import { lineOf, type PointParts } from "./line-protocol.ts";

export const MEASUREMENT = "waf_events";

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
 *   With sharded streams an entry ID is unique only within its shard, so the shard takes part:
 *   `ms·1e6 + (seq mod 100)·1e4 + shard·150 + hash(tx_id) mod 150` (64 shards at most), and
 *   two shards' entries of one millisecond never collide either (below 100 per ms and shard).
 */
export function pointTimeNs(
  event: WafEvent,
  streamId: string | undefined,
  shard: StreamPosition = SINGLE_STREAM,
): bigint {
  const h = BigInt(hash53(event.txId));
  if (event.timeNs !== undefined) {
    const p = event.timePrecisionNs;
    return event.timeNs - (event.timeNs % p) + (h % p);
  }
  const sid = streamId === undefined ? undefined : parseStreamId(streamId);
  if (!sid) throw new Error("an event without its own time needs its stream entry ID");
  if (shard.shards <= 1) return sid.ms * 1_000_000n + (sid.seq % 1000n) * 1000n + (h % 1000n);
  return sid.ms * 1_000_000n + (sid.seq % 100n) * 10_000n + BigInt(shard.index) * 150n + (h % 150n);
}

/** Which shard of how many a stream entry came from (its ID is unique only within it). */
export interface StreamPosition {
  index: number;
  shards: number;
}

export const SINGLE_STREAM: StreamPosition = { index: 0, shards: 1 };

/** Unix seconds of the event (its own time, else its stream entry's). */
export function eventUnixSeconds(event: WafEvent, streamId: string | undefined): number {
  if (event.timeNs !== undefined) return Number(event.timeNs / 1_000_000_000n);
  const sid = streamId === undefined ? undefined : parseStreamId(streamId);
  return sid ? Number(sid.ms / 1000n) : 0;
}

/**
 * How the point carries the client address (`INFLUX_IP_AS`): as the `client_ip` tag (the
 * default schema), or as a `client_ip` string field beside a `client_net` tag (IPv4 /24, IPv6
 * /48), which bounds the series an attacker with many addresses can create.
 */
export type IpAs = "tag" | "field";

/** The network an address belongs to, as `client_net` carries it: `203.0.113.0/24`, `2001:db8:1::/48`. */
export function clientNet(clientIp: string, privacy: PrivacyConfig): string {
  const ip = parseIp(clientIp);
  if (!ip) return "invalid";
  const bits = ip.version === 4 ? 24 : 48;
  const net = `${formatIp(truncateIp(ip, bits))}/${bits}`;
  // Hashed addresses get hashed networks: a tag must not give back what the field hides.
  return privacy.ipMasking === "hash" ? maskIp(net, privacy) : net;
}

/**
 * The event's point as its parts. The client IP is masked per `IP_MASKING` (reputation was
 * decided before, on the real address).
 */
export function toPoint(
  event: WafEvent,
  score: Score,
  streamId: string | undefined,
  privacy: PrivacyConfig,
  ipAs: IpAs = "tag",
  shard: StreamPosition = SINGLE_STREAM,
): PointParts {
  const ip = maskIp(event.clientIp, privacy);
  const numbers: PointParts["fields"] = [
    ["anomaly_score", { int: score.anomalyScore }],
    ["severity", { int: score.severity }],
    ["response_code", { int: event.responseCode ?? 0 }],
  ];
  // As a field, the address leaves the tag set; its network (a bounded tag) takes its place.
  const asField = ipAs === "field";
  return {
    measurement: MEASUREMENT,
    tags: [
      asField ? ["client_net", clientNet(event.clientIp, privacy)] : ["client_ip", ip],
      ["rule_id", score.ruleId],
      ["severity_level", score.level],
    ],
    fields: asField ? [...numbers, ["client_ip", { str: ip }]] : numbers,
    timeNs: pointTimeNs(event, streamId, shard),
  };
}

/** The event's point as one line of line protocol ({@link toPoint}'s arguments). */
export function toPointLine(...args: Parameters<typeof toPoint>): string {
  return lineOf(toPoint(...args));
}
