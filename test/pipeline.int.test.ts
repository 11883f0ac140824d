/**
 * The pipeline end to end on one machine (reference §5, §8): records on the Redis Stream → reader
 * (its production bundle) → local Lambda Invoke API → scorer → InfluxDB, alerts → alert
 * function → Redis list. Real Redis, VictoriaMetrics and InfluxDB 1.x; the real AWS SDK.
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvokeCommand } from "@aws-sdk/client-lambda";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLambdaClient } from "../functions/shared/lambda.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { corazaText, envelope, fixtureLines } from "./fixtures/records.ts";
import { influxQuery, influxRows, victoriaPoints } from "./readback.ts";
import { until } from "./wait.ts";

const STREAM = "waf-realtime";
const DLQ = "waf-realtime:dlq";
const ALERTS = "waf-alerts";
const GROUP = "realtime-processor";

/** Records with hand-computed expectations (reference §3). */
function buildRecords() {
  const records: Array<{
    text: string;
    severity?: number;
    level?: string;
    alertTx?: string;
    invalid?: RegExp;
  }> = [];
  // Envelopes: anomaly + weight of the rule's category.
  const table: Array<[number, string, number, string]> = [
    [65, "942100", 95, "critical"],
    [10, "941100", 35, "low"],
    [50, "920350", 50, "medium"],
    [30, "932160", 65, "high"],
    [75, "930120", 95, "critical"],
    [35, "913100", 35, "low"],
  ];
  for (let i = 0; i < 36; i++) {
    const [anomaly, rule, severity, level] = table[i % table.length] as [
      number,
      string,
      number,
      string,
    ];
    const tx = `env-${i}`;
    records.push({
      text: JSON.stringify(envelope({ id: tx, anomaly, rules: [rule], ip: `198.51.100.${i}` })),
      severity,
      level,
      alertTx: level === "critical" ? tx : undefined,
    });
  }
  // Coraza, timed now: CRS sum 5 (942100 critical) + 30 = 35, low.
  const nowNs = BigInt(Date.now()) * 1_000_000n + 123_456n;
  for (let i = 0; i < 4; i++) {
    records.push({
      text: corazaText({ id: `coraza-${i}`, unixNs: String(nowNs + BigInt(i)) }),
      severity: 35,
      level: "low",
    });
  }
  // Real ModSecurity v3 records (2025 timestamps: outside the last hour).
  for (const line of [
    ...fixtureLines("modsec3-crs4_longhdwst1full_mod-security-config.jsonl"),
    ...fixtureLines("modsec3.0.4_elastic-integrations_test-audit.log"),
  ]) {
    records.push({ text: line });
  }
  // Invalid ones.
  for (const line of fixtureLines("modsec2-json_EyesOfArgus_first10.jsonl").slice(0, 3)) {
    records.push({ text: line, invalid: /ModSecurity 2\.x/ });
  }
  records.push({ text: "{not json", invalid: /^not JSON/ });
  records.push({
    text: JSON.stringify({ transaction: { id: "x", client_ip: "nope" } }),
    invalid: /client_ip is not an IPv4/,
  });
  records.push({
    text: JSON.stringify(envelope({ id: "bad-score" })).replace(
      '"client_ip"',
      '"anomaly_score":"7","client_ip"',
    ),
    invalid: /anomaly_score/,
  });
  return records;
}

async function send(redis: Redis, texts: string[]): Promise<string[]> {
  const p = redis.pipeline();
  for (const t of texts) p.xadd(STREAM, "*", "event", t);
  const res = (await p.exec()) ?? [];
  return res.map(([err, id]) => {
    if (err) throw err;
    return id as string;
  });
}

/** Everything read, nothing pending, and the alert function's queue drained. */
async function settled(redis: Redis, total: number): Promise<void> {
  await until("the stream to be processed", async () => {
    const groups = (await redis.xinfo("GROUPS", STREAM)) as unknown[][];
    const g = groups.find((x) => x[1] === GROUP);
    if (!g) return false;
    const o: Record<string, unknown> = {};
    for (let i = 0; i + 1 < g.length; i += 2) o[String(g[i])] = g[i + 1];
    return Number(o["entries-read"]) >= total && Number(o.pending) === 0 && Number(o.lag) === 0;
  });
  await until("the alert queue to drain", async () => {
    const depth = await redis.xlen("waf:local-lambda:queue:waf-alerter");
    return depth === 0;
  });
}

beforeAll(() => {
  execFileSync(process.execPath, ["scripts/build.mjs", "reader"], {
    cwd: join(import.meta.dirname, ".."),
    stdio: "ignore",
  });
});

const env = { BATCH_SIZE: "8", BATCH_WINDOW_MS: "10", MAX_IN_FLIGHT: "2", LOG_LEVEL: "warn" };

describe("pipeline with VictoriaMetrics (InfluxDB v2 API)", () => {
  let stack: Stack;
  let redis: Redis;
  beforeAll(async () => {
    stack = await startStack({
      logDir: mkdtempSync(join(tmpdir(), "waf-e2e-")),
      readerBundle: true,
      env,
    });
    redis = new Redis(stack.redisUrl);
  });
  afterAll(async () => {
    await redis?.quit();
    await stack?.stop();
  });

  it("turns N records into exactly N valid points, critical ones into one alert each, invalid ones into DLQ entries with reasons", async () => {
    const records = buildRecords();
    const ids = await send(
      redis,
      records.map((r) => r.text),
    );
    await settled(redis, records.length);

    const valid = records.filter((r) => !r.invalid);
    // VictoriaMetrics makes freshly ingested rows searchable within about a second, even after
    // a force_flush: wait for the count to reach N, then require it to be exactly N.
    const read = async () => {
      const series = await victoriaPoints(stack.influxUrl, "waf_events_severity");
      return { series, samples: series.reduce((n, s) => n + s.values.length, 0) };
    };
    await until("the points to be searchable", async () => (await read()).samples >= valid.length);
    await new Promise((r) => setTimeout(r, 1500));
    const { series, samples } = await read();
    expect(samples).toBe(valid.length);
    // Every envelope's severity and level landed under its own client_ip.
    for (const r of valid.filter(
      (x) => x.severity !== undefined && x.text.includes('"anomaly_score"'),
    )) {
      const ip = (JSON.parse(r.text) as { transaction: { client_ip: string } }).transaction
        .client_ip;
      const s = series.find((x) => x.metric.client_ip === ip);
      expect(s?.metric.severity_level).toBe(r.level);
      expect(s?.values).toEqual([r.severity]);
    }

    const alerts = (await redis.lrange(ALERTS, 0, -1)).map(
      (a) => JSON.parse(a) as { tx_id: string; severity: number; severity_level: string },
    );
    const expectedTx = valid.flatMap((r) => (r.alertTx ? [r.alertTx] : []));
    expect(alerts.map((a) => a.tx_id).sort()).toEqual([...expectedTx].sort());
    for (const a of alerts) expect(a.severity_level).toBe("critical");

    const health = await fetch(stack.healthUrl() as string);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: "ok",
      redis: { ok: true },
      stream: { length: records.length, lag: 0, pending: 0 },
    });

    const dlq = (await redis.xrange(DLQ, "-", "+")).map(([, f]) => {
      const o: Record<string, string> = {};
      for (let i = 0; i + 1 < f.length; i += 2) o[f[i] as string] = f[i + 1] as string;
      return o;
    });
    const invalid = records.map((r, i) => ({ ...r, id: ids[i] })).filter((r) => r.invalid);
    expect(dlq).toHaveLength(invalid.length);
    for (const r of invalid) {
      const entry = dlq.find((d) => d.entry_id === r.id);
      expect(entry?.reason).toMatch(r.invalid as RegExp);
      expect(entry?.event).toBe(r.text);
    }
  });
});

describe("pipeline with InfluxDB 1.x (v1 API)", () => {
  let stack: Stack;
  let redis: Redis;
  const DB = "waf_e2e";
  beforeAll(async () => {
    stack = await startStack({
      logDir: mkdtempSync(join(tmpdir(), "waf-e2e1-")),
      readerBundle: true,
      influxApi: "v1",
      env: { ...env, INFLUXDB_BUCKET: DB },
    });
    redis = new Redis(stack.redisUrl);
  });
  afterAll(async () => {
    await redis?.quit();
    await stack?.stop();
  });

  it("answers the reference §8 Grafana query with the right numbers, and a redelivered batch changes no count", async () => {
    const records = buildRecords();
    const ids = await send(
      redis,
      records.map((r) => r.text),
    );
    await settled(redis, records.length);
    const valid = records.filter((r) => !r.invalid);

    const count = async () =>
      Number(
        (await influxRows(stack.influxUrl, DB, 'SELECT count("severity") FROM "waf_events"'))[0]
          ?.count ?? 0,
      );
    expect(await count()).toBe(valid.length);

    // Expected per severity_level over the last hour, from the hand-computed table.
    const recent = valid.filter((r) => r.level !== undefined);
    const byLevel = new Map<string, number[]>();
    for (const r of recent)
      byLevel.set(r.level as string, [
        ...(byLevel.get(r.level as string) ?? []),
        r.severity as number,
      ]);

    const grafana = async () =>
      influxQuery(
        stack.influxUrl,
        DB,
        'SELECT mean("severity") FROM "waf_events" WHERE time >= now() - 1h GROUP BY time(1m), "severity_level"',
      );
    const check = async () => {
      const series = await grafana();
      expect(series.map((s) => s.tags?.severity_level).sort()).toEqual([...byLevel.keys()].sort());
      for (const s of series) {
        const expected = byLevel.get(s.tags?.severity_level as string) as number[];
        const buckets = s.values.filter((v) => v[1] !== null).map((v) => v[1] as number);
        // All of one level's points have the same severity here, so every non-empty minute's mean is it.
        expect(new Set(expected).size).toBe(1);
        expect(buckets.length).toBeGreaterThan(0);
        for (const mean of buckets) expect(mean).toBe(expected[0]);
      }
      const exact = await influxRows(
        stack.influxUrl,
        DB,
        'SELECT count("severity"), sum("severity") FROM "waf_events" WHERE time >= now() - 1h GROUP BY "severity_level"',
      );
      for (const row of exact) {
        const expected = byLevel.get(row.severity_level as string) as number[];
        expect(row.count).toBe(expected.length);
        expect(row.sum).toBe(expected.reduce((a, b) => a + b, 0));
      }
    };
    await check();
    const alertsBefore = await redis.llen(ALERTS);
    expect(alertsBefore).toBe(valid.filter((r) => r.alertTx).length);
    const dlqBefore = await redis.xlen(DLQ);

    // Redelivery: the scorer gets the same entries again (as after a reader crash before XACK).
    const lambda = createLambdaClient(
      {
        endpoint: stack.lambdaUrl,
        region: "us-east-1",
        credentials: { accessKeyId: "local", secretAccessKey: "local" },
        maxAttempts: 1,
      },
      stack.env.LOCAL_LAMBDA_TOKEN,
    );
    const batch = {
      records: records.map((r, i) => ({ id: ids[i] as string, data: r.text, deliveryCount: 2 })),
    };
    const res = await lambda.send(
      new InvokeCommand({
        FunctionName: "waf-scorer",
        Payload: new TextEncoder().encode(JSON.stringify(batch)),
      }),
    );
    expect(res.FunctionError).toBeUndefined();
    const body = JSON.parse(new TextDecoder().decode(res.Payload)) as {
      batchItemFailures: unknown[];
      rejected: unknown[];
    };
    expect(body.batchItemFailures).toEqual([]);
    expect(body.rejected).toHaveLength(records.length - valid.length);
    await until(
      "the redelivered alerts to be handled",
      async () => (await redis.xlen("waf:local-lambda:queue:waf-alerter")) === 0,
    );

    expect(await count()).toBe(valid.length);
    await check();
    expect(await redis.llen(ALERTS)).toBe(alertsBefore);
    expect(await redis.xlen(DLQ)).toBe(dlqBefore);
    lambda.destroy();
  });
});
