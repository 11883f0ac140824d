/**
 * Fault injection against the real local pipeline (reference §5, issue "nothing lost, nothing
 * doubled"): a fixed set of records (valid, invalid, poison) is sent while the reader is
 * SIGKILLed and restarted (under new consumer names, so XAUTOCLAIM has to take over its
 * entries), every Redis client connection is dropped, InfluxDB 1.x is stopped for a while, and
 * the local runtime makes the scorer fail now and then. Then everything is counted.
 *
 * Each valid record has its own client IP, so its point is found by tag alone: a lost record
 * has no point, a doubled one has two (InfluxDB overwrites a rewritten point, so a redelivery
 * that keeps its timestamp is not a duplicate; a second point for the same event would be).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { type Stack, startStack } from "../../local/stack.ts";
import { influxQuery } from "../readback.ts";
import { until } from "../wait.ts";

export interface ChaosOptions {
  records: number;
  /** Reader SIGKILLs (each followed by a restart under a new consumer name). */
  kills: number;
  /** Times every Redis client connection is dropped (CLIENT KILL TYPE normal). */
  connectionDrops: number;
  /** How long InfluxDB is down (ms), once, in the middle of the run. */
  influxOutageMs: number;
  /** Share of scorer invocations that fail as a whole. */
  scorerFailRate: number;
  /** How long sending takes (ms); faults are spread over it. */
  sendMs: number;
  /** Give up waiting for the pipeline to settle after this long (ms). */
  settleTimeoutMs: number;
  log?: (line: string) => void;
}

export interface ChaosReport {
  records_sent: number;
  valid: number;
  invalid: number;
  poison: number;
  points_written: number;
  duplicate_points: number;
  alerts_expected: number;
  alerts: number;
  duplicate_alerts: number;
  missing_alerts: number;
  dlq_entries: number;
  duplicate_dlq_entries: number;
  records_lost: number;
  reader_kills: number;
  connection_drops: number;
  influx_outage_ms: number;
  seconds: number;
}

const POISON = "__chaos_poison__";
const STREAM = "waf-realtime";
const DLQ = "waf-realtime:dlq";
const ALERTS = "waf-alerts";
const GROUP = "realtime-processor";
const DB = "waf_chaos";

type Kind = "valid" | "critical" | "invalid" | "poison";

function ipOf(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

function record(i: number): { kind: Kind; text: string; tx: string; ip: string } {
  const tx = `chaos-${i}`;
  const ip = ipOf(i);
  if (i % 23 === 7) {
    return {
      kind: "invalid",
      tx,
      ip,
      text:
        i % 2
          ? `{"broken": ${i}`
          : JSON.stringify({ transaction: { id: tx, client_ip: "not-an-ip" } }),
    };
  }
  const critical = i % 5 === 0;
  const poison = i % 211 === 13;
  const text = JSON.stringify({
    transaction: {
      id: tx,
      client_ip: ip,
      anomaly_score: critical ? 65 : 10,
      request: { uri: poison ? `/x?p=${POISON}` : `/item?id=${i}`, method: "GET" },
      messages: [{ details: { ruleId: "942100", msg: "SQL Injection Attack Detected" } }],
    },
  });
  return { kind: poison ? "poison" : critical ? "critical" : "valid", tx, ip, text };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? (() => undefined);
  const started = Date.now();
  const logDir = mkdtempSync(join(tmpdir(), "waf-chaos-"));
  log(`logs: ${logDir}`);
  const stack: Stack = await startStack({
    logDir,
    readerBundle: true,
    influxApi: "v1",
    env: {
      INFLUXDB_BUCKET: DB,
      BATCH_SIZE: "20",
      BATCH_WINDOW_MS: "20",
      MAX_IN_FLIGHT: "3",
      MAX_RETRIES: "4",
      CLAIM_IDLE_MS: "2000",
      CONSUMER_NAME: "chaos-reader-0",
      LOG_LEVEL: "warn",
      POWERTOOLS_METRICS_DISABLED: "true",
      LOCAL_CHAOS_FAIL_RATE: String(o.scorerFailRate),
      LOCAL_CHAOS_POISON: POISON,
    },
  });
  const redis = new Redis(stack.redisUrl, { maxRetriesPerRequest: null });
  let kills = 0;
  let drops = 0;
  try {
    const records = Array.from({ length: o.records }, (_, i) => record(i));
    const ids: string[] = new Array(records.length);

    // Producer: evenly over sendMs, in small pipelined chunks.
    const producer = (async () => {
      const chunk = 25;
      const chunks = Math.ceil(records.length / chunk);
      for (let c = 0; c < chunks; c++) {
        const p = redis.pipeline();
        for (let i = c * chunk; i < Math.min(records.length, (c + 1) * chunk); i++) {
          p.xadd(STREAM, "*", "event", (records[i] as { text: string }).text);
        }
        const res = (await p.exec()) ?? [];
        res.forEach(([err, id], k) => {
          if (err) throw err;
          ids[c * chunk + k] = id as string;
        });
        await sleep(o.sendMs / chunks);
      }
    })();

    // Faults, spread over the sending time.
    const faults = (async () => {
      const steps = o.kills + o.connectionDrops + 1;
      const gap = o.sendMs / (steps + 1);
      let k = 0;
      let d = 0;
      let outageDone = false;
      for (let step = 0; step < steps; step++) {
        await sleep(gap);
        if (!outageDone && step === Math.floor(steps / 2)) {
          outageDone = true;
          log(`influxdb down for ${o.influxOutageMs} ms`);
          await stack.services.influx?.down("SIGKILL");
          await sleep(o.influxOutageMs);
          await stack.services.influx?.up();
          log("influxdb up");
        } else if (k < o.kills && (d >= o.connectionDrops || step % 2 === 0)) {
          k++;
          await stack.stopReader("SIGKILL");
          kills++;
          log(`reader SIGKILLed (${kills})`);
          await sleep(200);
          await stack.startReader({ CONSUMER_NAME: `chaos-reader-${kills}` });
        } else if (d < o.connectionDrops) {
          d++;
          await redis.call("CLIENT", "KILL", "TYPE", "normal").catch(() => undefined);
          drops++;
          log(`redis client connections dropped (${drops})`);
        }
      }
    })();

    await Promise.all([producer, faults]);
    log(`sent ${records.length} records; waiting for the pipeline to settle`);

    await until(
      "the stream to be fully processed",
      async () => {
        const groups = (await redis.xinfo("GROUPS", STREAM)) as unknown[][];
        const g = groups.find((x) => x[1] === GROUP);
        if (!g) return false;
        const info: Record<string, unknown> = {};
        for (let i = 0; i + 1 < g.length; i += 2) info[String(g[i])] = g[i + 1];
        const alertQueue = await redis.xlen("waf:local-lambda:queue:waf-alerter");
        return (
          Number(info["entries-read"]) >= records.length &&
          Number(info.pending) === 0 &&
          Number(info.lag) === 0 &&
          alertQueue === 0
        );
      },
      o.settleTimeoutMs,
    );

    // Count points by client_ip (one series per valid record).
    const series = await influxQuery(
      stack.influxUrl,
      DB,
      'SELECT count("severity") FROM "waf_events" GROUP BY "client_ip"',
    );
    const pointsByIp = new Map<string, number>();
    for (const s of series)
      pointsByIp.set(s.tags?.client_ip as string, Number(s.values[0]?.[1] ?? 0));
    const alerts = (await redis.lrange(ALERTS, 0, -1)).map(
      (a) => (JSON.parse(a) as { tx_id: string }).tx_id,
    );
    const dlq = (await redis.xrange(DLQ, "-", "+")).map(([, f]) => {
      const i = f.indexOf("entry_id");
      return f[i + 1] as string;
    });

    const scored = records.filter((r) => r.kind === "valid" || r.kind === "critical");
    const deadExpected = new Set(
      records.flatMap((r, i) =>
        r.kind === "invalid" || r.kind === "poison" ? [ids[i] as string] : [],
      ),
    );
    const criticalTx = new Set(records.filter((r) => r.kind === "critical").map((r) => r.tx));

    let lost = 0;
    let duplicates = 0;
    let points = 0;
    for (const r of scored) {
      const n = pointsByIp.get(r.ip) ?? 0;
      points += n;
      if (n === 0) lost++;
      if (n > 1) duplicates += n - 1;
    }
    // Points for IPs of invalid/poison records would be wrong too.
    const scoredIps = new Set(scored.map((r) => r.ip));
    for (const [ip, n] of pointsByIp) if (!scoredIps.has(ip)) duplicates += n;
    const dlqSet = new Set(dlq);
    for (const id of deadExpected) if (!dlqSet.has(id)) lost++;
    // A valid record in the DLQ is a lost event (it never got its point in time).
    const validIds = new Set(
      records.flatMap((r, i) =>
        r.kind === "valid" || r.kind === "critical" ? [ids[i] as string] : [],
      ),
    );
    const wronglyDead = dlq.filter((id) => validIds.has(id)).length;
    const alertSet = new Set(alerts);
    const missingAlerts = [...criticalTx].filter((tx) => !alertSet.has(tx)).length;

    return {
      records_sent: records.length,
      valid: scored.length,
      invalid: records.filter((r) => r.kind === "invalid").length,
      poison: records.filter((r) => r.kind === "poison").length,
      points_written: points,
      duplicate_points: duplicates,
      alerts_expected: criticalTx.size,
      alerts: alerts.length,
      duplicate_alerts: alerts.length - alertSet.size,
      missing_alerts: missingAlerts,
      dlq_entries: dlq.length,
      duplicate_dlq_entries: dlq.length - dlqSet.size,
      records_lost: lost + wronglyDead,
      reader_kills: kills,
      connection_drops: drops,
      influx_outage_ms: o.influxOutageMs,
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    await redis.quit().catch(() => undefined);
    await stack.stop();
  }
}

/** The table `npm run chaos` prints. */
export function formatReport(r: ChaosReport): string {
  const rows: Array<[string, number | string]> = [
    ["records sent", r.records_sent],
    ["  valid / invalid / poison", `${r.valid} / ${r.invalid} / ${r.poison}`],
    ["points written", r.points_written],
    ["duplicate points", r.duplicate_points],
    ["alerts (expected)", `${r.alerts} (${r.alerts_expected})`],
    ["duplicate alerts", r.duplicate_alerts],
    ["missing alerts", r.missing_alerts],
    ["DLQ entries (expected)", `${r.dlq_entries} (${r.invalid + r.poison})`],
    ["duplicate DLQ entries", r.duplicate_dlq_entries],
    ["records lost", r.records_lost],
    [
      "faults",
      `${r.reader_kills} reader SIGKILLs, ${r.connection_drops} connection drops, InfluxDB down ${r.influx_outage_ms} ms, scorer failures`,
    ],
    ["time", `${r.seconds} s`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n");
}

/** 0 lost, 0 duplicated, every alert, every expected DLQ entry. */
export function passed(r: ChaosReport): boolean {
  return (
    r.records_lost === 0 &&
    r.duplicate_points === 0 &&
    r.duplicate_alerts === 0 &&
    r.missing_alerts === 0 &&
    r.duplicate_dlq_entries === 0 &&
    r.dlq_entries === r.invalid + r.poison &&
    r.points_written === r.valid
  );
}
