/**
 * Read-back helpers for integration tests: what actually landed in VictoriaMetrics (InfluxDB v2
 * write-API stand-in) and InfluxDB 1.x. Plain `fetch`, no client library, so a bug in the
 * writer's client cannot hide itself in the read path too.
 */

/** One series as VictoriaMetrics exports it; timestamps are in milliseconds (VM drops the rest). */
export interface VictoriaSeries {
  /** Labels, including `__name__` (`<measurement>_<field>`, e.g. `waf_events_severity`). */
  metric: Record<string, string>;
  values: number[];
  timestamps: number[];
}

/**
 * Every sample of `metric` stored in VictoriaMetrics at `baseUrl`, series sorted by labels.
 * Flushes first: otherwise new series only become visible after ~10 s.
 *
 * @param metric a metric name or any series selector, e.g. `waf_events_severity{rule_id="942100"}`
 * @example
 * const [series] = await victoriaPoints(vm.url);
 * expect(series?.metric.severity_level).toBe("critical");
 */
export async function victoriaPoints(
  baseUrl: string,
  metric = "waf_events_severity",
): Promise<VictoriaSeries[]> {
  const flush = await fetch(new URL("/internal/force_flush", baseUrl), { method: "POST" });
  await expectOk(flush, "VictoriaMetrics force_flush");
  const url = new URL("/api/v1/export", baseUrl);
  url.searchParams.set("match[]", metric);
  const res = await fetch(url);
  const body = await expectOk(res, `VictoriaMetrics export of ${metric}`);
  const series = body
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as VictoriaSeries);
  // VM's export order is not stable; tests should not depend on it.
  return series.sort((a, b) => labelKey(a.metric).localeCompare(labelKey(b.metric)));
}

/** Total number of samples of `metric` (a name or selector) across all its series. */
export async function victoriaSampleCount(
  baseUrl: string,
  metric = "waf_events_severity",
): Promise<number> {
  const series = await victoriaPoints(baseUrl, metric);
  return series.reduce((sum, s) => sum + s.values.length, 0);
}

/** A cell of an InfluxQL result: `time` is always a `bigint` of nanoseconds. */
export type InfluxValue = string | number | boolean | bigint | null;

/** One series of an InfluxQL result (`results[0].series[i]`). */
export interface InfluxSeries {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: InfluxValue[][];
}

/**
 * Runs one InfluxQL statement against InfluxDB 1.x and returns `results[0].series` (`[]` when
 * nothing matched); throws with InfluxDB's message when it reports an error.
 *
 * Timestamps are requested as epoch nanoseconds and returned as `bigint`: as a JS number they
 * would lose their last ~3 digits (ns epochs exceed 2^53), and two distinct points could look
 * alike.
 *
 * @example
 * const [series] = await influxQuery(influx.url, "waf", 'SELECT * FROM "waf_events"');
 * expect(series?.values[0]?.[0]).toBe(1_700_000_000_123_456_789n);
 */
export async function influxQuery(baseUrl: string, db: string, q: string): Promise<InfluxSeries[]> {
  const url = new URL("/query", baseUrl);
  url.searchParams.set("db", db);
  url.searchParams.set("q", q);
  url.searchParams.set("epoch", "ns");
  const res = await fetch(url);
  const text = await res.text();
  let body: { error?: string; results?: { error?: string; series?: InfluxSeries[] }[] };
  try {
    body = parseJsonLossless(text) as typeof body;
  } catch {
    throw new Error(`InfluxDB query answered ${res.status} with non-JSON: ${text.slice(0, 500)}`);
  }
  const error = body.error ?? body.results?.[0]?.error;
  if (error !== undefined)
    throw new Error(`InfluxDB query failed (${res.status}): ${error} — ${q}`);
  if (!res.ok) throw new Error(`InfluxDB query answered ${res.status}: ${text.slice(0, 500)}`);
  const series = body.results?.[0]?.series ?? [];
  for (const s of series) {
    const t = s.columns.indexOf("time");
    if (t < 0) continue;
    for (const row of s.values) {
      const v = row[t];
      if (typeof v === "number") row[t] = BigInt(v);
    }
  }
  return series;
}

/**
 * `influxQuery` flattened to one object per row, the series' tags merged in (GROUP BY tags):
 * convenient for `toEqual` / `toContainEqual`.
 */
export async function influxRows(
  baseUrl: string,
  db: string,
  q: string,
): Promise<Record<string, InfluxValue>[]> {
  const series = await influxQuery(baseUrl, db, q);
  return series.flatMap((s) =>
    s.values.map((row) => {
      const obj: Record<string, InfluxValue> = { ...s.tags };
      s.columns.forEach((column, i) => {
        obj[column] = row[i] ?? null;
      });
      return obj;
    }),
  );
}

async function expectOk(res: Response, what: string): Promise<string> {
  const body = await res.text();
  if (!res.ok) throw new Error(`${what} answered ${res.status}: ${body.slice(0, 500)}`);
  return body;
}

function labelKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b)));
}

const BIGINT_MARK = "\u0000bigint:";

/**
 * JSON.parse that keeps integers beyond 2^53 exact, as `bigint` (Node 20's JSON.parse has no
 * access to the source text of a number). Numbers outside strings that are integers too large
 * for a double are quoted with a marker first, then revived.
 */
function parseJsonLossless(text: string): unknown {
  let out = "";
  let copied = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < text.length && /[0-9.eE+-]/.test(text.charAt(j))) j++;
      const token = text.slice(i, j);
      if (/^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token))) {
        out += text.slice(copied, i) + JSON.stringify(BIGINT_MARK + token);
        copied = j;
      }
      i = j - 1;
    }
  }
  out += text.slice(copied);
  return JSON.parse(out, (_key, value: unknown) =>
    typeof value === "string" && value.startsWith(BIGINT_MARK)
      ? BigInt(value.slice(BIGINT_MARK.length))
      : value,
  );
}
