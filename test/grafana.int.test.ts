/**
 * The Grafana dashboard (docs/grafana/waf-events.json) is importable and every InfluxQL query in
 * it runs against a real InfluxDB 1.x holding `waf_events` points written by the project's own
 * v1 writer, with the numbers those points imply (reference §4, §8).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createV1Writer } from "../core/metrics/influx-v1.ts";
import { clientNet } from "../core/metrics/point.ts";
import { type RunningService, startInfluxDB1 } from "../local/services.ts";
import { influxQuery, influxRows } from "./readback.ts";

const DB = "waf-grafana";
const OFF = { ipMasking: "off" as const, ipHashKey: undefined };

interface Target {
  refId: string;
  query: string;
  rawQuery: boolean;
  resultFormat: string;
  datasource: { type: string; uid: string };
  alias?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource: { type: string; uid: string };
  targets: Target[];
}

const dashboard = JSON.parse(
  readFileSync(join(import.meta.dirname, "../docs/grafana/waf-events.json"), "utf8"),
) as {
  __inputs: Array<{ name: string; pluginId: string }>;
  uid: string;
  title: string;
  panels: Panel[];
};
const panel = (title: string) => dashboard.panels.find((p) => p.title === title) as Panel;
const query = (title: string, ref = "A") =>
  panel(title).targets.find((t) => t.refId === ref)?.query as string;

/**
 * What Grafana substitutes before sending a query: the last hour, one-minute buckets, and the
 * `client` variable (the tag per-client panels group by: `client_ip`, or `client_net` with
 * INFLUX_IP_AS=field).
 */
function expander(client: string): (q: string) => string {
  return (q) =>
    q
      .replaceAll("$timeFilter", "time >= now() - 1h")
      .replaceAll("$__interval", "1m")
      .replaceAll("$client", client);
}

// [client_ip, rule_id, level, severity, events]: within the last hour.
const DATA: Array<[string, string, string, number, number]> = [
  ["203.0.113.7", "942100", "critical", 95, 5],
  ["198.51.100.4", "932160", "high", 65, 3],
  ["192.0.2.1", "920350", "low", 10, 2],
  ["2001:db8::1", "941100", "critical", 120, 1],
  ["192.0.2.99", "none", "low", 5, 1],
  ["192.0.2.50", "930120", "critical", 85, 2],
];

/** Per mode: the `client` variable, and what the per-client panels must return. */
const MODES = [
  {
    ipAs: "tag" as const,
    client: "client_ip",
    distinct: 6,
    top: [
      ["203.0.113.7", 5],
      ["198.51.100.4", 3],
    ],
    topCount: 6,
    critical: { "203.0.113.7": 5, "192.0.2.50": 2, "2001:db8::1": 1 },
  },
  {
    ipAs: "field" as const,
    client: "client_net",
    distinct: 4,
    top: [
      ["192.0.2.0/24", 5],
      ["203.0.113.0/24", 5],
    ],
    topCount: 4,
    critical: { "203.0.113.0/24": 5, "192.0.2.0/24": 2, "2001:db8::/48": 1 },
  },
];

describe.each(MODES)("Grafana dashboard waf-events.json, INFLUX_IP_AS=$ipAs", (mode) => {
  let influx: RunningService;
  const expand = expander(mode.client);

  beforeAll(async () => {
    influx = await startInfluxDB1({ database: DB });
    const writer = createV1Writer({ url: influx.url, org: "", bucket: DB });
    const now = BigInt(Date.now()) * 1_000_000n;
    const lines = DATA.flatMap(([ip, rule, level, severity, n], row) =>
      Array.from({ length: n }, (_, i) => {
        // Spread over the last 40 minutes; distinct timestamps, so no point overwrites another.
        const t =
          now - BigInt((row * 7 + i * 3 + 1) * 60) * 1_000_000_000n - BigInt(row * 1000 + i);
        const numbers = `anomaly_score=${severity}i,severity=${severity}i,response_code=403i`;
        const line =
          mode.ipAs === "tag"
            ? `waf_events,client_ip=${ip},rule_id=${rule},severity_level=${level} ${numbers} ${t}`
            : `waf_events,client_net=${clientNet(ip, OFF)},rule_id=${rule},severity_level=${level} ${numbers},client_ip="${ip}" ${t}`;
        return { key: `${row}-${i}`, line };
      }),
    );
    const outcomes = await writer.write(lines);
    expect(outcomes.every((o) => o.status === "accepted")).toBe(true);
    await writer.close();
  });

  afterAll(async () => {
    await influx?.stop();
  });

  it("is an importable dashboard: a data-source input, unique panel ids, raw InfluxQL targets bound to the time range", () => {
    expect(dashboard.uid).toBe("waf-events");
    expect(dashboard.__inputs).toEqual([
      expect.objectContaining({ name: "DS_INFLUXDB", pluginId: "influxdb" }),
    ]);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      // Grafana's import placeholder, filled in with the data source chosen at import.
      expect(p.datasource).toEqual({ type: "influxdb", uid: `\${DS_INFLUXDB}` });
      expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
      expect(p.targets.length).toBeGreaterThan(0);
      expect(new Set(p.targets.map((t) => t.refId)).size).toBe(p.targets.length);
      for (const t of p.targets) {
        expect(t.rawQuery).toBe(true);
        expect(t.query).toContain("$timeFilter");
        expect(t.query).toContain('FROM "waf_events"');
      }
    }
    expect(dashboard.panels.map((p) => p.title)).toEqual(
      expect.arrayContaining([
        "Severity over time by level",
        "Events by category",
        "Events by rule",
        "Top client IPs",
        "Alert rate",
      ]),
    );
  });

  it("runs every query without error against InfluxDB 1.x, each returning data", async () => {
    const all = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ p: p.title, t })));
    expect(all.length).toBeGreaterThanOrEqual(20);
    const results = await Promise.all(
      all.map(async ({ p, t }) => ({
        p,
        ref: t.refId,
        series: await influxQuery(influx.url, DB, expand(t.query)),
      })),
    );
    // Every category query but the ones with no data here still runs; most return rows.
    const empty = results.filter((r) => r.series.length === 0).map((r) => `${r.p}/${r.ref}`);
    const categoriesWithoutData = panel("Events by category").targets.length - 6;
    expect(empty.length).toBe(categoriesWithoutData);
    expect(empty.every((e) => e.startsWith("Events by category/"))).toBe(true);
  });

  it("returns the numbers the points imply", async () => {
    const q = (title: string, ref?: string) =>
      influxRows(influx.url, DB, expand(query(title, ref)));
    const sum = (rows: Array<Record<string, unknown>>, col: string) =>
      rows.reduce((n, r) => n + Number(r[col] ?? 0), 0);

    expect(await q("Critical events (alerts)")).toEqual([expect.objectContaining({ count: 8 })]);
    expect(await q("Events")).toEqual([expect.objectContaining({ count: 14 })]);
    expect(await q("Distinct clients ($client)")).toEqual([
      expect.objectContaining({ count: mode.distinct }),
    ]);
    expect(await q("Highest severity")).toEqual([expect.objectContaining({ max: 120 })]);

    // reference §8's query shape: mean severity per minute and level.
    const severity = await q("Severity over time by level");
    const critical = severity.filter((r) => r.severity_level === "critical");
    expect(critical.map((r) => r.mean).every((m) => [95, 120, 85].includes(Number(m)))).toBe(true);
    const byLevel = await q("Events by level");
    expect(
      sum(
        byLevel.filter((r) => r.severity_level === "critical"),
        "count",
      ),
    ).toBe(8);
    expect(
      sum(
        byLevel.filter((r) => r.severity_level === "high"),
        "count",
      ),
    ).toBe(3);
    expect(
      sum(
        byLevel.filter((r) => r.severity_level === "low"),
        "count",
      ),
    ).toBe(3);

    expect(sum(await q("Alert rate", "A"), "count")).toBe(8);
    expect(sum(await q("Alert rate", "B"), "count")).toBe(6); // 95 ×5 and 120 ×1

    const category = async (alias: string) => {
      const t = panel("Events by category").targets.find((x) =>
        x.alias?.startsWith(alias),
      ) as Target;
      return sum(await influxRows(influx.url, DB, expand(t.query)), "count");
    };
    expect(await category("sqli")).toBe(5);
    expect(await category("rce")).toBe(3);
    expect(await category("protocol")).toBe(2);
    expect(await category("xss")).toBe(1);
    expect(await category("lfi")).toBe(2);
    expect(await category("other")).toBe(1);

    const ips = await q("Top client IPs");
    const ranked = ips.map((r) => [r[mode.client], r.events]);
    expect(ranked.slice(0, 2).sort()).toEqual([...mode.top].sort());
    expect(ips).toHaveLength(mode.topCount);
    const criticalIps = await q("Top client IPs at critical");
    expect(Object.fromEntries(criticalIps.map((r) => [r[mode.client], r.alerts]))).toEqual(
      mode.critical,
    );

    const rules = await q("Events by rule");
    expect(
      Object.fromEntries(rules.map((r) => [r.rule_id, [r.events, r["max severity"]]])),
    ).toEqual({
      "942100": [5, 95],
      "932160": [3, 65],
      "920350": [2, 10],
      "941100": [1, 120],
      none: [1, 5],
      "930120": [2, 85],
    });
    expect(sum(await q("Top rules over time"), "count")).toBe(14);
  });
});
