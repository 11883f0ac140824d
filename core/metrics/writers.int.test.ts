/**
 * Both writers against real servers started by `local/services.ts`: VictoriaMetrics for the
 * v2 write API (it accepts `@influxdata/influxdb-client` writes unchanged, but silently drops
 * malformed lines, so refusals are proven on InfluxDB 1.x) and InfluxDB 1.6 for the v1 API.
 * What the writers call accepted is read back through plain HTTP (`test/readback.ts`).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type RunningService, startInfluxDB1, startVictoriaMetrics } from "../../local/services.ts";
import {
  influxQuery,
  influxRows,
  victoriaPoints,
  victoriaSampleCount,
} from "../../test/readback.ts";
import type { Logger } from "../lib/logger.ts";
import { createV1Writer } from "./influx-v1.ts";
import { createV2Writer } from "./influx-v2.ts";
import { lineOf } from "./line-protocol.ts";
import type { PointLine, WriteOutcome } from "./writer.ts";

/** An hour ago, in ms: recent enough for `now() - 1h` style queries, old enough to be past. */
const BASE_MS = BigInt(Date.now() - 3_600_000);

interface Spec {
  rule: string;
  level?: string;
  severity?: number;
  /** Millisecond offset from BASE_MS; distinct per point so VictoriaMetrics keeps them apart. */
  at?: number;
}

/** `n` points of the reference §4 shape, each its own series (client IP) and millisecond. */
function wafPoints(n: number, spec: Spec): PointLine[] {
  return Array.from({ length: n }, (_, i) => {
    const at = BigInt((spec.at ?? 0) + i);
    const ns = (BASE_MS + at) * 1_000_000n + BigInt(i % 1000);
    const line = lineOf({
      measurement: "waf_events",
      tags: [
        ["client_ip", `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`],
        ["rule_id", spec.rule],
        ["severity_level", spec.level ?? "high"],
      ],
      fields: [
        ["anomaly_score", { int: 40 + (i % 20) }],
        ["severity", { int: spec.severity ?? 60 + (i % 20) }],
        ["response_code", { int: 403 }],
      ],
      timeNs: ns,
    });
    return { key: `${spec.rule}-${i}`, line };
  });
}

type LogFn = Logger["warn"];

function spyLogger() {
  return {
    debug: vi.fn<LogFn>(),
    info: vi.fn<LogFn>(),
    warn: vi.fn<LogFn>(),
    error: vi.fn<LogFn>(),
  };
}

const statuses = (outcomes: WriteOutcome[]) => new Set(outcomes.map((o) => o.status));

describe("v2 writer → VictoriaMetrics", () => {
  let vm: RunningService;
  beforeAll(async () => {
    vm = await startVictoriaMetrics();
  });
  afterAll(async () => {
    await vm?.stop();
  });

  it("accepts 2,000 points and every one of them is stored", async () => {
    const writer = createV2Writer({ url: vm.url, token: "t", org: "waf-org", bucket: "waf" });
    const lines = wafPoints(2_000, { rule: "bulk" });
    const outcomes = await writer.write(lines);
    expect(outcomes).toEqual(lines.map((l) => ({ key: l.key, status: "accepted" })));
    expect(await victoriaSampleCount(vm.url, 'waf_events_severity{rule_id="bulk"}')).toBe(2_000);
    // The values are the ones written, not just the right number of samples.
    const [first] = await victoriaPoints(vm.url, 'waf_events_anomaly_score{client_ip="10.0.0.7"}');
    expect(first?.metric).toMatchObject({ rule_id: "bulk", severity_level: "high" });
    expect(first?.values).toEqual([47]);
    expect(first?.timestamps).toEqual([Number(BASE_MS) + 7]);
    await writer.close();
  });

  it("fails every line while the server is down, then the same write succeeds", async () => {
    const logger = spyLogger();
    const writer = createV2Writer({ url: vm.url, org: "waf-org", bucket: "waf", logger });
    const lines = wafPoints(500, { rule: "outage" });
    await vm.down();
    try {
      const outcomes = await writer.write(lines);
      expect(outcomes).toHaveLength(500);
      expect(statuses(outcomes)).toEqual(new Set(["failed"]));
      expect(outcomes[0]).toMatchObject({ reason: expect.stringContaining("ECONNREFUSED") });
      expect(logger.warn).toHaveBeenCalledTimes(1);
    } finally {
      await vm.up();
    }
    const again = await writer.write(lines);
    expect(statuses(again)).toEqual(new Set(["accepted"]));
    expect(await victoriaSampleCount(vm.url, 'waf_events_severity{rule_id="outage"}')).toBe(500);
  });
});

describe("v1 writer → InfluxDB 1.6", () => {
  let influx: RunningService;
  const count = async (rule: string, db = "waf"): Promise<number> => {
    const [series] = await influxQuery(
      influx.url,
      db,
      `SELECT count("severity") FROM "waf_events" WHERE "rule_id" = '${rule}'`,
    );
    return Number(series?.values[0]?.[1] ?? 0);
  };

  beforeAll(async () => {
    influx = await startInfluxDB1({ database: "waf" });
  });
  afterAll(async () => {
    await influx?.stop();
  });

  it("accepts 2,000 points and every one of them is stored", async () => {
    const writer = createV1Writer({ url: influx.url, org: "", bucket: "waf" });
    const lines = wafPoints(2_000, { rule: "bulk" });
    const outcomes = await writer.write(lines);
    expect(outcomes).toEqual(lines.map((l) => ({ key: l.key, status: "accepted" })));
    expect(await count("bulk")).toBe(2_000);
    const rows = await influxRows(
      influx.url,
      "waf",
      `SELECT "anomaly_score", "severity", "response_code" FROM "waf_events" WHERE "client_ip" = '10.0.0.7' AND "rule_id" = 'bulk'`,
    );
    expect(rows).toEqual([
      {
        time: (BASE_MS + 7n) * 1_000_000n + 7n,
        anomaly_score: 47,
        severity: 67,
        response_code: 403,
      },
    ]);
  });

  it("rejects exactly the malformed lines with InfluxDB's reason and stores the other 98", async () => {
    const writer = createV1Writer({ url: influx.url, org: "", bucket: "waf" });
    const lines = wafPoints(100, { rule: "mixed" });
    lines[23] = {
      key: "unparsable",
      line: "waf_events,client_ip=203.0.113.1,rule_id=mixed anomaly_score=",
    };
    // Parses, but InfluxDB refuses it for good: `severity` is an integer field already.
    lines[71] = {
      key: "type-conflict",
      line: `waf_events,client_ip=203.0.113.2,rule_id=mixed severity="high" ${(BASE_MS + 71n) * 1_000_000n}`,
    };
    const outcomes = await writer.write(lines);
    outcomes.forEach((o, i) => {
      expect(o.key).toBe(lines[i]?.key);
      if (i !== 23 && i !== 71) expect(o.status).toBe("accepted");
    });
    expect(outcomes[23]).toEqual({
      key: "unparsable",
      status: "rejected",
      reason: expect.stringMatching(/400.*unable to parse.*missing field value/),
    });
    expect(outcomes[71]).toEqual({
      key: "type-conflict",
      status: "rejected",
      reason: expect.stringContaining("field type conflict"),
    });
    expect(await count("mixed")).toBe(98);
    // Exactly the accepted points, by their timestamps.
    const [series] = await influxQuery(
      influx.url,
      "waf",
      `SELECT "severity" FROM "waf_events" WHERE "rule_id" = 'mixed'`,
    );
    const stored = new Set(series?.values.map((row) => row[0]));
    lines.forEach((l, i) => {
      if (i === 23 || i === 71) return;
      expect(stored.has(BigInt(l.line.split(" ").pop() as string))).toBe(true);
    });
  });

  it("rejects a point beyond the retention policy and keeps its neighbours", async () => {
    const res = await fetch(`${influx.url}/query`, {
      method: "POST",
      body: new URLSearchParams({ q: 'CREATE DATABASE "short" WITH DURATION 1h' }),
    });
    expect(res.ok).toBe(true);
    const writer = createV1Writer({ url: influx.url, org: "", bucket: "short" });
    const now = BigInt(Date.now()) * 1_000_000n;
    const lines = wafPoints(10, { rule: "retention" }).map((l, i) => ({
      key: l.key,
      line: l.line.replace(/ \d+$/, ` ${i === 4 ? now - 7_200_000_000_000n : now - BigInt(i)}`),
    }));
    const outcomes = await writer.write(lines);
    outcomes.forEach((o, i) => {
      if (i === 4) {
        expect(o).toMatchObject({
          status: "rejected",
          reason: expect.stringContaining("points beyond retention policy"),
        });
      } else expect(o.status).toBe("accepted");
    });
    expect(await count("retention", "short")).toBe(9);

    // Every point too old: InfluxDB says it dropped them all, each is rejected.
    const stale = lines.map((l, i) => ({
      key: l.key,
      line: l.line.replace(/ \d+$/, ` ${now - 7_200_000_000_000n - BigInt(i)}`),
    }));
    const all = await writer.write(stale);
    expect(all.map((o) => o.status)).toEqual(Array(10).fill("rejected"));
    expect(all[9]).toMatchObject({ reason: expect.stringContaining("dropped=10") });
  });

  it("rewrites the same points without adding any", async () => {
    const writer = createV1Writer({ url: influx.url, org: "", bucket: "waf" });
    const lines = wafPoints(300, { rule: "rewrite" });
    expect(statuses(await writer.write(lines))).toEqual(new Set(["accepted"]));
    expect(statuses(await writer.write(lines))).toEqual(new Set(["accepted"]));
    expect(await count("rewrite")).toBe(300);
  });

  it("answers the seed's Grafana query with the right means", async () => {
    const writer = createV1Writer({ url: influx.url, org: "", bucket: "grafana" });
    await fetch(`${influx.url}/query`, {
      method: "POST",
      body: new URLSearchParams({ q: 'CREATE DATABASE "grafana"' }),
    });
    // Ten minutes ago, all in one minute bucket: critical 90/100, low 10/20/30.
    const t0 = (BigInt(Date.now() - 600_000) / 60_000n) * 60_000n;
    const at = (ms: number) => (t0 + BigInt(ms)) * 1_000_000n;
    const line = (ip: string, level: string, severity: number, ms: number) => ({
      key: ip,
      line: `waf_events,client_ip=${ip},rule_id=942100,severity_level=${level} anomaly_score=1i,severity=${severity}i,response_code=0i ${at(ms)}`,
    });
    const outcomes = await writer.write([
      line("192.0.2.1", "critical", 90, 1),
      line("192.0.2.2", "critical", 100, 2),
      line("192.0.2.3", "low", 10, 3),
      line("192.0.2.4", "low", 20, 4),
      line("192.0.2.5", "low", 30, 5),
    ]);
    expect(statuses(outcomes)).toEqual(new Set(["accepted"]));
    const rows = await influxRows(
      influx.url,
      "grafana",
      'SELECT mean("severity") FROM "waf_events" WHERE time >= now() - 1h GROUP BY time(1m), "severity_level"',
    );
    const nonEmpty = rows.filter((r) => r.mean !== null);
    expect(nonEmpty).toEqual(
      expect.arrayContaining([
        { severity_level: "critical", time: t0 * 1_000_000n, mean: 95 },
        { severity_level: "low", time: t0 * 1_000_000n, mean: 20 },
      ]),
    );
    expect(nonEmpty).toHaveLength(2);
  });

  it("fails every line, and logs why once, when the database does not exist", async () => {
    const logger = spyLogger();
    const writer = createV1Writer({ url: influx.url, org: "", bucket: "missing", logger });
    const outcomes = await writer.write(wafPoints(50, { rule: "nodb" }));
    expect(statuses(outcomes)).toEqual(new Set(["failed"]));
    expect(outcomes[0]).toMatchObject({
      reason: expect.stringContaining('database not found: "missing"'),
    });
    expect(logger.error).toHaveBeenCalledTimes(1);
    expect(logger.error.mock.calls[0]?.[0]).toContain("database not found");
  });

  it("fails every line while the server is down, then the same write succeeds", async () => {
    const logger = spyLogger();
    const writer = createV1Writer({ url: influx.url, org: "", bucket: "waf", logger });
    const lines = wafPoints(200, { rule: "outage" });
    await influx.down();
    try {
      const outcomes = await writer.write(lines);
      expect(outcomes).toHaveLength(200);
      expect(statuses(outcomes)).toEqual(new Set(["failed"]));
      expect(logger.warn).toHaveBeenCalledTimes(1);
    } finally {
      await influx.up();
    }
    expect(statuses(await writer.write(lines))).toEqual(new Set(["accepted"]));
    expect(await count("outage")).toBe(200);
  });
});
