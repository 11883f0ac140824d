/**
 * Privacy (reference §4): IP masking applied to every stored or sent IP after reputation is
 * decided, and removal of secrets from what leaves the scorer (URIs carry tokens too).
 */
import { createHmac } from "node:crypto";
import { formatIp, parseIp, truncateIp } from "../event/ip.ts";

export type IpMasking = "off" | "truncate" | "hash";

export interface PrivacyConfig {
  ipMasking: IpMasking;
  /** HMAC key for `hash`; required by config when masking is `hash`. */
  ipHashKey: string | undefined;
}

/**
 * Masks an address: `truncate` keeps IPv4 /24 and IPv6 /48 (an IPv4-mapped address is
 * truncated as IPv4), `hash` replaces it with a keyed HMAC-SHA256 (first 16 hex digits),
 * stable for one key so per-IP counts still work.
 * @example maskIp("203.0.113.9", { ipMasking: "truncate", ipHashKey: undefined }) // "203.0.113.0"
 */
export function maskIp(ip: string, cfg: PrivacyConfig): string {
  switch (cfg.ipMasking) {
    case "off":
      return ip;
    case "truncate": {
      const parsed = parseIp(ip);
      if (!parsed) return "invalid";
      return formatIp(truncateIp(parsed, parsed.version === 4 ? 24 : 48));
    }
    case "hash": {
      if (!cfg.ipHashKey) throw new Error("IP_HASH_KEY is required when IP_MASKING=hash");
      const parsed = parseIp(ip);
      // Hash the canonical form so ::ffff:1.2.3.4 and 1.2.3.4 are one client.
      const canonical = parsed ? formatIp(parsed) : ip;
      return `h:${createHmac("sha256", cfg.ipHashKey).update(canonical).digest("hex").slice(0, 16)}`;
    }
  }
}

const SECRET_PARAM =
  /^(?:.*[-_.])?(?:token|access_token|id_token|refresh_token|secret|client_secret|password|passwd|pwd|pass|apikey|api_key|api-key|key|auth|authorization|session|sessionid|session_id|sid|phpsessid|jsessionid|jwt|signature|sig|credential|credentials|security-token|cookie|code)$/i;

const MAX_URI = 2048;
export const REDACTED = "[REDACTED]";

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, " "));
  } catch {
    return name;
  }
}

/**
 * Removes secrets from a request URI: values of query parameters named like credentials
 * (token, api_key, password, session, signature, …) and `user:password@` userinfo. Long
 * URIs are cut to 2048 characters.
 * @example redactUri("/login?user=bob&password=hunter2") // "/login?user=bob&password=[REDACTED]"
 */
export function redactUri(uri: string | undefined): string {
  if (!uri) return "";
  let out = uri.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@?#]*@/i, `$1${REDACTED}@`);
  const q = out.indexOf("?");
  if (q !== -1) {
    const hash = out.indexOf("#", q);
    const query = out.slice(q + 1, hash === -1 ? undefined : hash);
    const redacted = query
      .split("&")
      .map((pair) => {
        const eq = pair.indexOf("=");
        const name = eq === -1 ? pair : pair.slice(0, eq);
        return eq !== -1 && SECRET_PARAM.test(decodeName(name)) ? `${name}=${REDACTED}` : pair;
      })
      .join("&");
    out = `${out.slice(0, q + 1)}${redacted}${hash === -1 ? "" : out.slice(hash)}`;
  }
  return out.length > MAX_URI ? `${out.slice(0, MAX_URI)}…` : out;
}
