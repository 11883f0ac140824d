/** Parsing of the time formats audit records carry, into nanoseconds since the epoch. */

const MONTHS: Record<string, number> = {
  Jan: 0,
  Feb: 1,
  Mar: 2,
  Apr: 3,
  May: 4,
  Jun: 5,
  Jul: 6,
  Aug: 7,
  Sep: 8,
  Oct: 9,
  Nov: 10,
  Dec: 11,
};

const NS_PER_S = 1_000_000_000n;
const NS_PER_MS = 1_000_000n;

/**
 * ModSecurity v3 `time_stamp` ("Fri May 14 14:38:37 2021", day padded with a space), read as UTC.
 * @returns nanoseconds, or undefined when the text is not of that form.
 */
export function parseModsecTime(text: unknown): bigint | undefined {
  if (typeof text !== "string" || text.length > 40) return undefined;
  const m = /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/.exec(
    text.trim(),
  );
  if (!m) return undefined;
  const month = MONTHS[m[1] as string];
  if (month === undefined) return undefined;
  const ms = Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
  return Number.isFinite(ms) ? BigInt(ms) * NS_PER_MS : undefined;
}

/**
 * Coraza `unix_timestamp`: nanoseconds, above 2^53, so JSON.parse rounds it to a nearby double.
 * The rounding (≤ 256 ns) is far below the millisecond we keep, so the result is stable.
 * Smaller magnitudes are read as µs, ms or s, for producers that changed the unit.
 */
export function parseUnixTimestamp(value: unknown): bigint | undefined {
  let n: number;
  if (typeof value === "number") n = value;
  else if (typeof value === "string" && /^\d{1,20}$/.test(value)) n = Number(value);
  else return undefined;
  if (!Number.isFinite(n) || n <= 0) return undefined;
  let ms: number;
  if (n >= 1e17) ms = n / 1e6;
  else if (n >= 1e14) ms = n / 1e3;
  else if (n >= 1e11) ms = n;
  else ms = n * 1e3;
  return BigInt(Math.floor(ms)) * NS_PER_MS;
}

/** Coraza `timestamp` ("2024/01/02 03:04:05"), read as UTC, when `unix_timestamp` is absent. */
export function parseCorazaTime(text: unknown): bigint | undefined {
  if (typeof text !== "string" || text.length > 40) return undefined;
  const m = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(text.trim());
  if (!m) return undefined;
  const ms = Date.UTC(
    Number(m[1]),
    Number(m[2]) - 1,
    Number(m[3]),
    Number(m[4]),
    Number(m[5]),
    Number(m[6]),
  );
  return Number.isFinite(ms) ? BigInt(ms) * NS_PER_MS : undefined;
}

export const PRECISION_S = NS_PER_S;
export const PRECISION_MS = NS_PER_MS;
