/**
 * The shell-style patterns `waf ship` accepts (`/var/log/modsec_audit.log*`, quoted so the
 * shipper, not the shell, expands them on every scan). Pure: matching only, no directory reads.
 *
 * Per path segment: `*` any run of characters but `/`, `?` one character, `[abc]`, `[a-z]`,
 * `[!x]` / `[^x]` one of (or none of) a set; `\` escapes. A leading `.` is matched only by a
 * literal `.`, as in the shell. `**` is not supported (it is refused, not treated as `*`).
 */

/** Whether a path segment holds a wildcard. */
export function hasMagic(segment: string): boolean {
  return /(^|[^\\])[*?[]/.test(segment);
}

/** Thrown for a pattern we do not understand, so a typo is not silently a literal name. */
export class GlobError extends Error {
  override readonly name = "GlobError";
}

/** A matcher for one path segment (a file or directory name). */
export function segmentMatcher(segment: string): (name: string) => boolean {
  if (segment.includes("**"))
    throw new GlobError(`"${segment}": ** is not supported; list the directories, or use *`);
  let re = "^";
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i] as string;
    if (c === "\\" && i + 1 < segment.length) {
      re += escapeRe(segment[++i] as string);
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const close = segment.indexOf("]", i + 2);
      if (close === -1) throw new GlobError(`"${segment}": unclosed [`);
      let body = segment.slice(i + 1, close);
      let negate = false;
      if (body[0] === "!" || body[0] === "^") {
        negate = true;
        body = body.slice(1);
      }
      re += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, (m) => `\\${m}`)}]`;
      i = close;
    } else re += escapeRe(c);
  }
  re += "$";
  const regex = new RegExp(re, "s");
  const dotOk = segment.startsWith(".");
  return (name) => (dotOk || !name.startsWith(".")) && regex.test(name);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * Splits an absolute or relative pattern into the literal directory it starts from and the
 * segments to match below it.
 *
 * @example
 * splitPattern("/var/log/modsec_audit.log*") // { root: "/var/log", segments: ["modsec_audit.log*"] }
 */
export function splitPattern(pattern: string): { root: string; segments: string[] } {
  const absolute = pattern.startsWith("/");
  const parts = pattern.split("/").filter((p) => p !== "" && p !== ".");
  const firstMagic = parts.findIndex(hasMagic);
  if (firstMagic === -1) return { root: pattern, segments: [] };
  const literal = parts.slice(0, firstMagic).join("/");
  return {
    root: absolute ? `/${literal}` : literal === "" ? "." : literal,
    segments: parts.slice(firstMagic),
  };
}

/** File names that are compressed rotations: their records were shipped from the live file. */
export const COMPRESSED = /\.(gz|bz2|xz|zst|lz4|zip|Z)$/;
