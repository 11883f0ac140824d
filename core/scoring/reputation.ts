/**
 * IP reputation (reference §3): static malicious lists, an allowlist that wins over everything,
 * and optional dynamic sources (a threat-intelligence set, repeat offenders) that adapters
 * keep in memory so the scorer never makes a network round trip per event.
 */
import { IpSet, type ParsedIp, parseIp } from "../event/ip.ts";

/** A source of "known malicious" verdicts; synchronous by design (no I/O on the hot path). */
export interface MaliciousSource {
  has(ip: ParsedIp): boolean;
}

export interface ReputationVerdict {
  malicious: boolean;
  allowlisted: boolean;
}

/**
 * Decides reputation for a client IP. IPv4-mapped IPv6 addresses match IPv4 entries
 * (parseIp already maps them).
 */
export class Reputation {
  constructor(
    private readonly allowlist: IpSet = new IpSet(),
    private readonly sources: readonly MaliciousSource[] = [],
  ) {}

  /** Builds from static lists (entries are IPs or CIDRs). */
  static fromLists(opts: {
    malicious?: Iterable<string>;
    allowlist?: Iterable<string>;
    extraSources?: MaliciousSource[];
  }): Reputation {
    const staticSet = IpSet.parse(opts.malicious ?? []);
    return new Reputation(IpSet.parse(opts.allowlist ?? []), [
      staticSet,
      ...(opts.extraSources ?? []),
    ]);
  }

  verdict(clientIp: string): ReputationVerdict {
    const ip = parseIp(clientIp);
    if (!ip) return { malicious: false, allowlisted: false };
    if (this.allowlist.has(ip)) return { malicious: false, allowlisted: true };
    return { malicious: this.sources.some((s) => s.has(ip)), allowlisted: false };
  }
}
