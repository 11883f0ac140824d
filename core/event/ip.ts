/**
 * IP address parsing and matching without Node's `net` module, so the pure domain
 * can validate `client_ip`, match CIDR lists and mask addresses on its own.
 *
 * Addresses are held as bigints: IPv4 in 32 bits, IPv6 in 128 bits. An IPv4-mapped
 * IPv6 address (`::ffff:203.0.113.9`) is treated as its IPv4 address everywhere (reference §3).
 */

export interface ParsedIp {
  version: 4 | 6;
  /** The address as an unsigned integer (32 bits for v4, 128 for v6). */
  value: bigint;
}

const V4_MASK = 0xffffffffn;

/**
 * The 32-bit value of a dotted-quad IPv4 address, scanned without allocating; undefined when
 * it is not one. Four decimal octets of 1–3 digits, at most 255; a leading zero is refused
 * (octal in some parsers), like Node's net.isIP.
 */
function parseIpv4(text: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let leadingZero = false;
  let parts = 0;
  for (let i = 0; i <= text.length; i++) {
    // The end of the text closes the last octet like a dot.
    const c = i < text.length ? text.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || octet > 255 || ++parts > 4) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      leadingZero = false;
    } else if (c >= 0x30 && c <= 0x39) {
      if (leadingZero || digits === 3) return undefined;
      if (digits === 0 && c === 0x30) leadingZero = true;
      octet = octet * 10 + (c - 0x30);
      digits++;
    } else {
      return undefined;
    }
  }
  return parts === 4 ? value : undefined;
}

function parseIpv6(input: string): bigint | undefined {
  let text = input;
  const zone = text.indexOf("%");
  if (zone !== -1) {
    // A zone ID is an interface name or number; anything else cannot be a tag value safely.
    if (!/^[0-9A-Za-z._-]{1,32}$/.test(text.slice(zone + 1))) return undefined;
    text = text.slice(0, zone);
  }
  if (text.length < 2 || text.length > 45) return undefined;
  let tail: bigint | undefined;
  let tailGroups = 0;
  const lastColon = text.lastIndexOf(":");
  if (text.indexOf(".", lastColon) !== -1) {
    // Embedded IPv4 in the last 32 bits (e.g. ::ffff:1.2.3.4).
    const v4 = parseIpv4(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = BigInt(v4);
    text = `${text.slice(0, lastColon + 1)}0:0`;
    tailGroups = 2;
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parseGroups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const groups = s.split(":");
    const out: number[] = [];
    for (const g of groups) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const head = parseGroups(halves[0] ?? "");
  if (head === undefined) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const rest = parseGroups(halves[1] ?? "");
    if (rest === undefined) return undefined;
    const missing = 8 - head.length - rest.length;
    if (missing < 1) return undefined;
    groups = [...head, ...new Array<number>(missing).fill(0), ...rest];
  } else {
    groups = head;
  }
  if (groups.length !== 8) return undefined;
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  if (tail !== undefined && tailGroups === 2) value = (value & ~V4_MASK) | tail;
  return value;
}

/**
 * Parses an IPv4 or IPv6 address. IPv4-mapped IPv6 addresses come back as IPv4.
 * Results are memoised (a bounded map, cleared when full): the same clients recur, and
 * validation, reputation and masking all parse the same address. They are frozen, being shared.
 * @returns undefined when `text` is not an address.
 * @example parseIp("::ffff:203.0.113.9") // { version: 4, value: 3405803785n }
 */
export function parseIp(text: string): ParsedIp | undefined {
  if (typeof text !== "string" || text.length === 0 || text.length > 64) return undefined;
  const hit = parsed.get(text);
  if (hit !== undefined) return hit ?? undefined;
  const ip = parseUncached(text);
  if (parsed.size >= PARSED_MAX) parsed.clear();
  parsed.set(text, ip ? Object.freeze(ip) : null);
  return ip;
}

const PARSED_MAX = 4096;
const parsed = new Map<string, Readonly<ParsedIp> | null>();

function parseUncached(text: string): ParsedIp | undefined {
  if (text.includes(":")) {
    const value = parseIpv6(text);
    if (value === undefined) return undefined;
    if (value >> 32n === 0xffffn) return { version: 4, value: value & V4_MASK };
    return { version: 6, value };
  }
  const v4 = parseIpv4(text);
  return v4 === undefined ? undefined : { version: 4, value: BigInt(v4) };
}

/** Whether `text` is an IPv4 or IPv6 address. */
export function isIp(text: string): boolean {
  if (typeof text !== "string" || text.length === 0 || text.length > 64) return false;
  // A dotted quad needs no bigint; IPv6 goes through the (memoised) full parse.
  if (!text.includes(":")) return parseIpv4(text) !== undefined;
  return parseIp(text) !== undefined;
}

/** Formats an address canonically (RFC 5952 for IPv6: lower case, longest zero run compressed). */
export function formatIp(ip: ParsedIp): string {
  if (ip.version === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

/** Keeps the first `bits` bits of an address (the network part). */
export function truncateIp(ip: ParsedIp, bits: number): ParsedIp {
  const width = ip.version === 4 ? 32 : 128;
  const hostBits = BigInt(width - Math.max(0, Math.min(width, bits)));
  return { version: ip.version, value: (ip.value >> hostBits) << hostBits };
}

interface Network {
  version: 4 | 6;
  prefix: bigint;
  bits: number;
}

/** Thrown by {@link IpSet.parse} for an entry that is neither an address nor a CIDR block. */
export class InvalidIpEntryError extends Error {
  constructor(readonly entry: string) {
    super(`not an IP address or CIDR block: "${entry.slice(0, 80)}"`);
    this.name = "InvalidIpEntryError";
  }
}

function parseNetwork(entry: string): Network {
  const slash = entry.indexOf("/");
  const addr = parseIp(slash === -1 ? entry : entry.slice(0, slash));
  if (!addr) throw new InvalidIpEntryError(entry);
  // A mapped IPv6 CIDR (::ffff:10.0.0.0/104) is an IPv4 CIDR with 96 fewer bits.
  const mappedV6 = addr.version === 4 && entry.includes(":");
  const width = addr.version === 4 ? 32 : 128;
  let bits = width;
  if (slash !== -1) {
    const bitText = entry.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bitText)) throw new InvalidIpEntryError(entry);
    bits = Number(bitText) - (mappedV6 ? 96 : 0);
    if (bits < 0 || bits > width) throw new InvalidIpEntryError(entry);
  }
  return { version: addr.version, prefix: truncateIp(addr, bits).value, bits };
}

/**
 * A set of IP addresses and CIDR blocks (IPv4 and IPv6) with O(prefix lengths) lookup:
 * exact addresses go in a hash set, each distinct prefix length in its own map.
 * @example IpSet.parse(["203.0.113.0/24", "2001:db8::/32"]).has("203.0.113.9") // true
 */
export class IpSet {
  private readonly byBits = new Map<string, Set<bigint>>();
  /** The same buckets, ready for lookups: no key parsing, shifts precomputed. */
  private readonly buckets: Array<{ version: 4 | 6; shift: bigint; prefixes: Set<bigint> }> = [];
  private size_ = 0;

  /** Parses entries (addresses or CIDRs); blank entries and `#` comments are skipped. */
  static parse(entries: Iterable<string>): IpSet {
    const set = new IpSet();
    for (const raw of entries) {
      const entry = raw.trim();
      if (entry === "" || entry.startsWith("#")) continue;
      set.add(entry);
    }
    return set;
  }

  /** Adds an address or CIDR block; throws {@link InvalidIpEntryError} for anything else. */
  add(entry: string): void {
    const net = parseNetwork(entry);
    const key = `${net.version}/${net.bits}`;
    let bucket = this.byBits.get(key);
    if (!bucket) {
      bucket = new Set();
      this.byBits.set(key, bucket);
      const width = net.version === 4 ? 32 : 128;
      this.buckets.push({
        version: net.version,
        shift: BigInt(width - net.bits),
        prefixes: bucket,
      });
    }
    if (!bucket.has(net.prefix)) {
      bucket.add(net.prefix);
      this.size_++;
    }
  }

  get size(): number {
    return this.size_;
  }

  /** Whether the address (string or parsed) lies in any entry. Non-addresses are never members. */
  has(ip: string | ParsedIp): boolean {
    if (this.size_ === 0) return false;
    const parsed = typeof ip === "string" ? parseIp(ip) : ip;
    if (!parsed) return false;
    for (const b of this.buckets) {
      if (b.version !== parsed.version) continue;
      if (b.prefixes.has((parsed.value >> b.shift) << b.shift)) return true;
    }
    return false;
  }
}
