/**
 * InfluxDB line protocol, written by hand (pure: no client library): escaping of measurement
 * names, tag keys and values and field names exactly as `@influxdata/influxdb-client`'s
 * `Point` does it (point.test.ts proves the two agree), fields kept in the order given (the
 * client sorts them; the reference's line puts `severity` before `response_code`).
 */

/** The characters escaped in tag keys and values and in field names; and in measurements. */
const NEEDS_TAG_ESCAPE = /[, =\n\r\t]/;
const NEEDS_MEASUREMENT_ESCAPE = /[, \n\r\t]/;
const TAG_ESCAPE_ALL = /[, =\n\r\t]/g;
const MEASUREMENT_ESCAPE_ALL = /[, \n\r\t]/g;
const ESCAPES: Readonly<Record<string, string>> = {
  ",": "\\,",
  " ": "\\ ",
  "=": "\\=",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};
const escapeChar = (c: string) => ESCAPES[c] as string;

/** A tag key, tag value or field name, escaped. */
export function escapeTag(value: string): string {
  return NEEDS_TAG_ESCAPE.test(value) ? value.replace(TAG_ESCAPE_ALL, escapeChar) : value;
}

export function escapeMeasurement(value: string): string {
  return NEEDS_MEASUREMENT_ESCAPE.test(value)
    ? value.replace(MEASUREMENT_ESCAPE_ALL, escapeChar)
    : value;
}

/** A field value: `<n>i` for integers, a quoted string for strings. */
export type FieldValue = { int: number } | { str: string };

export interface PointParts {
  measurement: string;
  /** Tags in the order written; empty keys or values are left out, as the client does. */
  tags: ReadonlyArray<readonly [string, string]>;
  /** At least one field, written in this order. */
  fields: ReadonlyArray<readonly [string, FieldValue]>;
  /** Nanoseconds since the epoch. */
  timeNs: bigint;
}

function fieldText(v: FieldValue): string {
  if ("int" in v) return `${Math.trunc(v.int)}i`;
  return `"${v.str.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * One line: `measurement[,tag=value…] field=value[,…] time`.
 * @example
 * lineOf({ measurement: "m", tags: [["t", "a b"]], fields: [["n", { int: 1 }]], timeNs: 5n })
 * // 'm,t=a\\ b n=1i 5'
 */
export function lineOf(p: PointParts): string {
  let line = escapeMeasurement(p.measurement);
  for (const [key, value] of p.tags) {
    if (key && value) line += `,${escapeTag(key)}=${escapeTag(value)}`;
  }
  let sep = " ";
  for (const [name, value] of p.fields) {
    line += `${sep}${escapeTag(name)}=${fieldText(value)}`;
    sep = ",";
  }
  return `${line} ${p.timeNs}`;
}
