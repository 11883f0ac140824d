/** `MALICIOUS_IPS_FILE`, read once at start-up by the scorer and by `waf score`. */
import { readFileSync } from "node:fs";
import { ConfigError } from "../../core/config.ts";
import { parseBlocklist } from "../../core/reputation/blocklist.ts";

/**
 * The entries of `MALICIOUS_IPS_FILE` (one IP or CIDR a line, `#`/`;`/`//` comments). An
 * unreadable file or a line that is not an address stops start-up, naming the variable.
 */
export function readMaliciousIpsFile(path: string | undefined): string[] {
  if (!path) return [];
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError("MALICIOUS_IPS_FILE", `cannot be read: ${(err as Error).message}`);
  }
  const { entries, invalid } = parseBlocklist(text);
  const first = invalid[0];
  if (first) {
    throw new ConfigError(
      "MALICIOUS_IPS_FILE",
      `line ${first.line} is not an IP address or CIDR block: "${first.text}"` +
        (invalid.length > 1 ? ` (and ${invalid.length - 1} more lines)` : ""),
    );
  }
  return entries;
}
