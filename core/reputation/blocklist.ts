/**
 * Plain IP/CIDR blocklist files (FireHOL netsets, Spamhaus DROP, a team's own list) into the
 * threat-intelligence set `REPUTATION_SET_KEY`.
 *
 * The set is a Redis sorted set: member = an IP or CIDR in canonical form, score = when it
 * expires (unix seconds; `+inf` = never). A feed writes it with
 * `ZADD <key> <expiry> 198.51.100.7` (or `ZADD <key> GT …` to only ever extend); the scorer
 * ignores members whose score has passed, and writers prune them. A plain Redis set
 * (`SADD`, no expiry) is read too, for feeds that cannot compute scores.
 */
import { readFile } from "node:fs/promises";
import type { Redis } from "ioredis";
import { formatIp, parseIp, truncateIp } from "../event/ip.ts";

/**
 * The canonical form of an IP or CIDR entry, or undefined when it is neither: addresses as
 * RFC 5952/dotted quad, CIDRs as their network address (`203.0.113.9/24` → `203.0.113.0/24`),
 * IPv4-mapped IPv6 as IPv4 (`::ffff:10.0.0.0/104` → `10.0.0.0/8`), full-length prefixes as
 * plain addresses.
 */
export function canonicalEntry(raw: string): string | undefined {
  const text = raw.trim();
  const slash = text.indexOf("/");
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const addr = parseIp(addrText);
  if (!addr) return undefined;
  const mapped = addr.version === 4 && addrText.includes(":");
  const width = addr.version === 4 ? 32 : 128;
  let bits = width;
  if (slash !== -1) {
    const bitText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bitText)) return undefined;
    bits = Number(bitText) - (mapped ? 96 : 0);
    if (bits < 0 || bits > width) return undefined;
  }
  const net = formatIp(truncateIp(addr, bits));
  return bits === width ? net : `${net}/${bits}`;
}

export interface ParsedBlocklist {
  /** Canonical entries, deduplicated, in file order. */
  entries: string[];
  /** Lines that held something other than an IP or CIDR (1-based line numbers). */
  invalid: Array<{ line: number; text: string }>;
}

/**
 * Parses a blocklist: one IP or CIDR a line; blank lines and comments (`#`, `;`, `//`, whole
 * line or trailing) skipped; anything after the first whitespace or comma ignored, so
 * `1.10.16.0/20 ; SBL256894` and `203.0.113.9,scanner` work.
 */
export function parseBlocklist(text: string): ParsedBlocklist {
  const seen = new Set<string>();
  const entries: string[] = [];
  const invalid: ParsedBlocklist["invalid"] = [];
  text.split(/\r?\n/).forEach((rawLine, i) => {
    const line = rawLine.replace(/(#|;|\/\/).*$/, "").trim();
    if (line === "") return;
    const token = line.split(/[\s,]+/)[0] ?? "";
    const entry = canonicalEntry(token);
    if (!entry) {
      invalid.push({ line: i + 1, text: rawLine.trim().slice(0, 100) });
      return;
    }
    if (!seen.has(entry)) {
      seen.add(entry);
      entries.push(entry);
    }
  });
  return { entries, invalid };
}

/** The reputation key holds something other than a sorted set. */
export class BlocklistLoadError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BlocklistLoadError";
  }
}

export interface LoadResult {
  key: string;
  /** Entries written (new or extended). */
  loaded: number;
  invalid: ParsedBlocklist["invalid"];
  /** Unix seconds when the loaded entries expire; null = never. */
  expiresAt: number | null;
  /** Expired members removed while at it. */
  pruned: number;
}

const CHUNK = 1000;

/**
 * Loads a blocklist file into the threat-intelligence sorted set, each entry expiring after
 * `ttlSeconds` (omitted or 0: never). An entry already there with a later expiry keeps it
 * (`ZADD GT`). Expired members are pruned. Invalid lines are reported, not loaded.
 * @example await loadBlocklist(redis, "waf:threat-intel", "/etc/waf/drop.txt", 86_400)
 */
export async function loadBlocklist(
  redis: Redis,
  key: string,
  file: string,
  ttlSeconds?: number,
  opts: { now?: () => number } = {},
): Promise<LoadResult> {
  const parsed = parseBlocklist(await readFile(file, "utf8"));
  const type = await redis.type(key);
  if (type !== "none" && type !== "zset") {
    throw new BlocklistLoadError(
      `${key} is a Redis ${type}, not a sorted set: loadBlocklist writes entries with expiry (ZADD)`,
    );
  }
  const nowS = (opts.now ?? Date.now)() / 1000;
  const expiresAt = ttlSeconds && ttlSeconds > 0 ? Math.ceil(nowS + ttlSeconds) : null;
  const score = expiresAt === null ? "+inf" : String(expiresAt);
  let loaded = 0;
  for (let i = 0; i < parsed.entries.length; i += CHUNK) {
    const args: string[] = [];
    for (const e of parsed.entries.slice(i, i + CHUNK)) args.push(score, e);
    // CH counts updated scores too; GT never shortens an existing expiry.
    loaded += Number(await redis.zadd(key, "GT", "CH", ...args));
  }
  const pruned = Number(await redis.zremrangebyscore(key, "-inf", `(${nowS}`));
  return { key, loaded, invalid: parsed.invalid, expiresAt, pruned };
}
