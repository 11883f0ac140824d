/**
 * Every Redis key of the alert side, in one place (reference §4): the alert list, its per-tx_id
 * dedup and notification-progress keys, the notification throttle and channel rate cap, the
 * scorer's per-minute level counts, campaign windows and repeat offenders.
 *
 * One function names them all. On a Redis Cluster every key but the list carries the hash tag
 * `{<ALERT_LIST_KEY>}` (keys one Lua script touches together must share a slot; the list itself
 * keeps its exact name); on a single node every key is byte for byte what it always was. Parts
 * written by a request (tx_id, category, client) are bounded: a part that is long, not
 * well-formed, or holds characters that could be read as structure becomes `#<SHA-256>` (see
 * {@link keyPart}).
 *
 * Pure: names only, no client.
 */
import { digest, isWellFormed } from "./text.ts";

export interface AlertKeys {
  /** The list itself, `ALERT_LIST_KEY`, exactly. */
  readonly list: string;
  /** String: the tx_id was listed (kept as long as the list's retention). */
  seen(txId: string): string;
  /** Hash: which channels finished notifying the tx_id (same retention). */
  progress(txId: string): string;
  /** Hash: one channel's throttle window for one (category, client). */
  throttle(channel: string, category: string, client: string): string;
  /** Sorted set: a channel's throttle windows that suppressed alerts, by end. */
  throttleDue(channel: string): string;
  /** Hash: a channel's notifications in the current minute (the rate cap). */
  rate(channel: string): string;
  /** Hash: what a channel's rate cap held back, summarised like a throttle window. */
  held(channel: string): string;
  /** Hash: the scorer's counts of scored events by level in one unix minute. */
  stats(minute: number): string;
  /** What every campaign window's key starts with (the scorer's `CampaignStore` takes it). */
  readonly campaignPrefix: string;
  /** Hash: one client's campaign window. */
  campaign(clientKey: string, windowStart: number): string;
  /** Sorted set: repeat offenders (read by the scorer's reputation cache). */
  readonly offenders: string;
  /** Sorted set: one offender entry's recent tx_ids. */
  offenderWindow(entry: string): string;
}

/** Longest part written by a request kept as it is in a key. */
const MAX_PART = 128;
/**
 * What a raw key part may hold: no control character, no leading `#` (the hashed form's
 * mark), and no separator `:` unless it is the key's last part.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const PLAIN = /^(?!#)[^\u0000-\u001f\u007f:]*$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
const PLAIN_WITH_COLON = /^(?!#)[^\u0000-\u001f\u007f]*$/;

/**
 * A key part written by a request: as it is when short, well-formed and free of characters
 * that could be read as structure; otherwise `#` and the SHA-256 of its UTF-16 units, so two
 * different values never share a key and no key grows with the input.
 * @example keyPart("tx-1") // "tx-1";  keyPart("a".repeat(500)) // "#" + 64 hex digits
 */
export function keyPart(value: string, opts: { colon?: boolean } = {}): string {
  const plain = opts.colon ? PLAIN_WITH_COLON : PLAIN;
  return value.length <= MAX_PART && plain.test(value) && isWellFormed(value)
    ? value
    : `#${digest(value)}`;
}

/** The repeat offenders' set: beside the threat-intelligence feed's set, never inside it. */
export function offendersKey(reputationSetKey: string | undefined): string {
  return `${reputationSetKey ?? "waf:reputation"}:offenders`;
}

/**
 * One client's campaign window under `prefix` ({@link AlertKeys.campaignPrefix}). On a single
 * node the braces are inert; on a cluster the prefix's own tag (`{<ALERT_LIST_KEY>}`), which
 * comes first, takes precedence, so every window shares the list's slot (the store pipelines
 * several windows at once, and a cluster pipeline must not span slots).
 */
export function campaignKey(prefix: string, clientKey: string, windowStart: number): string {
  return `${prefix}:{${keyPart(clientKey, { colon: true })}:${windowStart}}`;
}

/** One offender entry's window set, next to the offenders' set `key`. */
export function offenderWindowKey(offenders: string, entry: string): string {
  return `${offenders}:window:${entry}`;
}

/**
 * The alert side's keys for `ALERT_LIST_KEY` (and `REPUTATION_SET_KEY`, which names the
 * offenders' set).
 * @example alertKeys("waf-alerts").seen("tx-1") // "waf-alerts:seen:tx-1"
 */
export function alertKeys(
  alertListKey: string,
  reputationSetKey?: string,
  opts: { cluster?: boolean } = {},
): AlertKeys {
  const list = alertListKey;
  // On a cluster every key but the list carries the list's name as its hash tag: the list
  // (hashed whole, no braces) and `{list}:…` land in one slot, so the scripts and pipelines
  // that touch several of them work. A single node keeps every name as it always was.
  const base = opts.cluster ? `{${list}}` : list;
  const offenders = opts.cluster ? `${base}:offenders` : offendersKey(reputationSetKey);
  const campaignPrefix = `${base}:campaign`;
  return {
    list,
    // A tx_id is the last part, so it may hold colons (campaign ids do).
    seen: (txId) => `${base}:seen:${keyPart(txId, { colon: true })}`,
    progress: (txId) => `${base}:notified:${keyPart(txId, { colon: true })}`,
    // The client (an address, a /64, a hash) is the last part: IPv6 colons stay.
    throttle: (channel, category, client) =>
      `${base}:throttle:${channel}:${keyPart(category)}:${keyPart(client, { colon: true })}`,
    throttleDue: (channel) => `${base}:throttle:${channel}:due`,
    rate: (channel) => `${base}:rate:${channel}`,
    held: (channel) => `${base}:rate:${channel}:held`,
    stats: (minute) => `${base}:stats:${minute}`,
    campaignPrefix,
    campaign: (clientKey, windowStart) => campaignKey(campaignPrefix, clientKey, windowStart),
    offenders,
    offenderWindow: (entry) => offenderWindowKey(offenders, entry),
  };
}
