/**
 * Text that came from a request, made safe to carry (issue 12): well-formed UTF-16 (a lone
 * surrogate makes `encodeURIComponent` throw and turns into U+FFFD on the wire), bounded
 * without splitting a surrogate pair, on one line where a sink needs it, and identifiers
 * bounded without ever merging two of them. Pure.
 *
 * Each sink escapes on its own (Slack in channels/slack.ts, headers in channels/webhook.ts);
 * what is here is what every sink needs first.
 */
import { createHash } from "node:crypto";

type Es2024String = { toWellFormed(): string; isWellFormed(): boolean };

/** The text with every lone surrogate replaced by U+FFFD (`String.prototype.toWellFormed`). */
export function wellFormed(text: string): string {
  return (text as unknown as Es2024String).toWellFormed();
}

/** Whether the text holds no lone surrogate. */
export function isWellFormed(text: string): boolean {
  return (text as unknown as Es2024String).isWellFormed();
}

/** The cut marker. */
export const ELLIPSIS = "…";

/**
 * Cuts well-formed text to at most `max` UTF-16 units, never inside a surrogate pair, marking
 * the cut with "…" (the marker counts).
 * @example truncate("abcdef", 4) // "abc…"
 */
export function truncate(text: string, max: number): string {
  const s = wellFormed(text);
  if (s.length <= max) return s;
  if (max <= 0) return "";
  let end = max - 1;
  // A high surrogate at the end would be split from its low half.
  if (end > 0 && isHighSurrogate(s.charCodeAt(end - 1))) end--;
  return `${s.slice(0, end)}${ELLIPSIS}`;
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

/** One line, no control characters: attacker-controlled text must not forge lines or headers. */
export function oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ");
}

/** UTF-8 bytes one code point takes inside a JSON string, escapes included. */
function jsonCharBytes(cp: number): number {
  if (cp === 0x22 || cp === 0x5c) return 2; // \" \\
  if (cp < 0x20)
    return cp === 0x08 || cp === 0x09 || cp === 0x0a || cp === 0x0c || cp === 0x0d ? 2 : 6;
  if (cp < 0x80) return 1;
  if (cp < 0x800) return 2;
  if (cp >= 0xd800 && cp <= 0xdfff) return 6; // a lone surrogate, escaped as \udxxx
  return cp < 0x10000 ? 3 : 4;
}

/** UTF-8 bytes of the text inside a JSON string (without the quotes), escapes included. */
export function jsonBytes(text: string): number {
  let n = 0;
  for (const ch of text) n += jsonCharBytes(ch.codePointAt(0) as number);
  return n;
}

/**
 * Well-formed text whose JSON form takes at most `maxBytes` UTF-8 bytes, cut at a code point
 * and marked with "…" when it was longer. Idempotent.
 * @example boundText("é".repeat(10), 8) // "éé…" (2 + 2 + 3 bytes)
 */
export function boundText(text: string, maxBytes: number): string {
  const s = wellFormed(text);
  if (s.length * 6 <= maxBytes || jsonBytes(s) <= maxBytes) return s;
  const budget = maxBytes - jsonCharBytes(ELLIPSIS.codePointAt(0) as number);
  let used = 0;
  let end = 0;
  for (const ch of s) {
    const b = jsonCharBytes(ch.codePointAt(0) as number);
    if (used + b > budget) break;
    used += b;
    end += ch.length;
  }
  return `${s.slice(0, end)}${ELLIPSIS}`;
}

/**
 * SHA-256 (hex) of the text's UTF-16 code units, so texts that differ only in lone
 * surrogates still differ.
 */
export function digest(text: string): string {
  return createHash("sha256").update(Buffer.from(text, "utf16le")).digest("hex");
}

/**
 * An identifier (a tx_id) bounded like {@link boundText} without ever merging two of them:
 * as it is when it is well-formed and fits; otherwise a readable, well-formed prefix, then
 * `…#` and the SHA-256 of the whole. Idempotent.
 * @example boundId("tx-1", 1024) // "tx-1"
 */
export function boundId(text: string, maxBytes: number): string {
  if (isWellFormed(text) && jsonBytes(text) <= maxBytes) return text;
  const tail = `${ELLIPSIS}#${digest(text)}`;
  const prefix = boundText(text, Math.max(0, maxBytes - jsonBytes(tail) - 3));
  return `${prefix.endsWith(ELLIPSIS) ? prefix.slice(0, -ELLIPSIS.length) : prefix}${tail}`;
}
