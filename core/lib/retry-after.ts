/** The one reader of HTTP `Retry-After` (RFC 9110 §10.2.3). Pure: `now` is an argument. */

/** Longest wait a server can ask for through `Retry-After` (a hostile or broken one asks for days). */
export const RETRY_AFTER_MAX_MS = 300_000;

/**
 * `Retry-After` in milliseconds — delay-seconds or an HTTP date, relative to `now` — capped at
 * {@link RETRY_AFTER_MAX_MS}; undefined when absent or unusable.
 *
 * @example
 * parseRetryAfter("3", 0) // 3000
 * parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", Date.parse("Wed, 21 Oct 2015 07:27:58 GMT")) // 2000
 */
export function parseRetryAfter(
  header: string | null | undefined,
  now: number,
): number | undefined {
  if (header === null || header === undefined) return undefined;
  const value = header.trim();
  if (value === "") return undefined;
  if (/^\d+$/.test(value)) return Math.min(RETRY_AFTER_MAX_MS, Number(value) * 1000);
  // An HTTP date names its day or month; V8 would read "-1" or "1.5" as dates too.
  if (!/[A-Za-z]{3}/.test(value)) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.min(RETRY_AFTER_MAX_MS, Math.max(0, at - now));
}
