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

/**
 * Words that make a parameter a credential wherever they stand in its name (`passwordConfirm`,
 * `new_password`, `clientSecret`, `X-Amz-Security-Token`).
 */
const SECRET_WORDS = new Set([
  "token",
  "secret",
  "password",
  "passwd",
  "passphrase",
  "apikey",
  "jwt",
  "credential",
  "credentials",
  "sessionid",
  "sessid",
  "phpsessid",
  "jsessionid",
  "aspsessionid",
  "signature",
  "authorization",
]);

/**
 * Words that make a parameter a credential when they end its name (`api_key`, `auth_code`,
 * `sid`): alone they are too common to match anywhere (`key_id`, `code_point`).
 */
const SECRET_LAST_WORDS = new Set([
  "key",
  "code",
  "pass",
  "pwd",
  "auth",
  "session",
  "sid",
  "sig",
  "cookie",
  "otp",
]);

const MAX_URI = 2048;
export const REDACTED = "[REDACTED]";

/** Decodes percent-encoding (and `+`), repeatedly: `%2570` hides `%70` hides `p`. */
function decodeName(name: string): string {
  let out = name.replace(/\+/g, " ");
  for (let i = 0; i < 3 && out.includes("%"); i++) {
    let next: string;
    try {
      next = decodeURIComponent(out);
    } catch {
      // A lone `%` somewhere: decode what can be decoded.
      next = out.replace(/%[0-9a-f]{2}/gi, (m) =>
        String.fromCharCode(Number.parseInt(m.slice(1), 16)),
      );
    }
    if (next === out) break;
    out = next;
  }
  return out;
}

/**
 * The words of a parameter name, lower case: percent-decoded, compatibility-normalised
 * (full-width letters), split at every non-alphanumeric character (`_`, `-`, `.`, brackets,
 * spaces) and at camelCase boundaries; trailing array indices (`password[0]`) dropped.
 * @example nameWords("user[accessToken]") // ["user", "access", "token"]
 */
export function nameWords(name: string): string[] {
  const words = decodeName(name)
    .normalize("NFKC")
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  while (words.length > 1 && /^\d+$/.test(words.at(-1) as string)) words.pop();
  return words;
}

/**
 * Whether a parameter name names a credential: one of its words is a secret word, or it ends in
 * a word that is one at the end, alone or joined to the word before (`session_id` →
 * `sessionid`, `api_key` → `apikey`).
 * @example isSecretName("clientSecret") // true;  isSecretName("state") // false
 */
export function isSecretName(name: string): boolean {
  const words = nameWords(name);
  if (words.length === 0) return false;
  if (words.some((w) => SECRET_WORDS.has(w))) return true;
  const last = words.at(-1) as string;
  const lastTwo = words.slice(-2).join("");
  return SECRET_LAST_WORDS.has(last) || SECRET_WORDS.has(lastTwo) || SECRET_LAST_WORDS.has(lastTwo);
}

/** `name=value` pairs separated by `&` or `;`, each value of a secret name redacted. */
function redactPairs(pairs: string): string {
  return pairs.replace(/(^|[&;])([^&;=]*)=([^&;]*)/g, (whole, sep: string, name: string) =>
    isSecretName(name) ? `${sep}${name}=${REDACTED}` : whole,
  );
}

/**
 * Removes secrets from a request URI (reference §4, issue 12 row 7): values of parameters whose
 * name, normalised ({@link nameWords}), names a credential — in the query, in path parameters
 * (`/app;jsessionid=…`) and in a fragment that holds parameters (`#access_token=…`) — and
 * `user:password@` userinfo. Long URIs are cut to 2048 characters, after redaction.
 * @example redactUri("/login?user=bob&password=hunter2") // "/login?user=bob&password=[REDACTED]"
 */
export function redactUri(uri: string | undefined): string {
  if (!uri) return "";
  const withoutUser = uri.replace(/^((?:[a-z][a-z0-9+.-]*:)?\/\/)[^/@?#]*@/i, `$1${REDACTED}@`);
  const hash = withoutUser.indexOf("#");
  const beforeHash = hash === -1 ? withoutUser : withoutUser.slice(0, hash);
  const fragment = hash === -1 ? undefined : withoutUser.slice(hash + 1);
  const q = beforeHash.indexOf("?");
  const path = q === -1 ? beforeHash : beforeHash.slice(0, q);
  const query = q === -1 ? undefined : beforeHash.slice(q + 1);
  // Path parameters: `;name=value` up to the next `/` or `;`.
  const redactedPath = path.replace(/;([^;/=]*)=([^;/]*)/g, (whole, name: string) =>
    isSecretName(name) ? `;${name}=${REDACTED}` : whole,
  );
  let out = redactedPath;
  if (query !== undefined) out += `?${redactPairs(query)}`;
  if (fragment !== undefined)
    out += `#${fragment.includes("=") ? redactPairs(fragment) : fragment}`;
  if (out.length <= MAX_URI) return out;
  // Never split a surrogate pair at the cut.
  const end = /[\uD800-\uDBFF]/.test(out.charAt(MAX_URI - 1)) ? MAX_URI - 1 : MAX_URI;
  return `${out.slice(0, end)}…`;
}
