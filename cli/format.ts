/**
 * Terminal output helpers. Every value shown comes, sooner or later, from an attacker's request
 * (URIs, rule ids, raw records), so text is made inert before it reaches a terminal: control
 * characters (ANSI escape sequences could rewrite the screen or the title bar) and bidi
 * overrides are shown as visible escapes.
 */

// C0 controls, DEL, C1 controls, and the Unicode bidi embedding/override/isolate characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** The text with every control character replaced by a visible escape (`\x1b`, `\n`, `\u202e`). */
export function clean(text: string): string {
  return text.replace(UNSAFE, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    const code = c.charCodeAt(0);
    return code < 0x100
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/** At most `max` characters (code points), with `…` when cut. */
export function truncate(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, Math.max(0, max - 1)).join("")}…`;
}

function width(text: string): number {
  return [...text].length;
}

/**
 * A plain-text table: a header row, then one row per item; columns padded to their widest
 * cell, except the last, which runs free (URIs, reasons).
 */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ""))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - width(c))))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** `12,345` */
export function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** `1 record`, `2 records` */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${count(n)} ${n === 1 ? word : many}`;
}

/** A duration in words an operator reads at a glance: `850 ms`, `42 s`, `3 min`, `2 h 5 min`, `3 d`. */
export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.round(ms / 1_000);
  if (s < 120) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 120) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 === 0 ? `${h} h` : `${h} h ${min % 60} min`;
  return `${Math.round(h / 24)} d`;
}

/** Unix seconds as `2025-05-14 14:38:37Z` (UTC: on-call people sit in many time zones). */
export function utc(unixSeconds: number): string {
  if (!Number.isFinite(unixSeconds) || unixSeconds <= 0) return "-";
  return `${new Date(unixSeconds * 1000).toISOString().slice(0, 19).replace("T", " ")}Z`;
}
