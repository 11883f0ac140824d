/**
 * A real WAF in the loop (reference §7 `waf ship`, §8): real attack and benign requests (the corpus's
 * raw bytes) through Debian's nginx + ModSecurity v3 + OWASP CRS, `waf ship` on its audit log,
 * the whole pipeline (reader → local Invoke API → scorer → a real InfluxDB 1.x, alerts → Redis).
 * The audit log on disk is the ground truth: every transaction ModSecurity logged must become
 * exactly one point, whatever happened to the shipper.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../core/config.ts";
import { scoreRecord, scorerSettingsFrom } from "../core/scorer.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { type CorpusRequest, quickRequests, sendAll } from "../local/waf/traffic.ts";
import { type RunningWaf, type ShipProcess, startShipProcess, startWaf } from "../local/waf.ts";
import { corpusJson, corpusLines } from "./fixtures/records.ts";
import { influxRows } from "./readback.ts";
import { until } from "./wait.ts";

const ROOT = join(import.meta.dirname, "..");
const STREAM = "waf-realtime";
const GROUP = "realtime-processor";
const ALERTS = "waf-alerts";
const DB = "waf-realtime";
const settings = scorerSettingsFrom(loadConfig({}));

/** The transactions in audit-log files: unique_id → the record's bytes (last copy wins). */
function auditRecords(files: string[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const file of files) {
    if (!existsSync(file)) continue;
    const data = readFileSync(file);
    let start = 0;
    for (let nl = data.indexOf(10); nl !== -1; nl = data.indexOf(10, start)) {
      const line = data.subarray(start, nl);
      start = nl + 1;
      const id = /"unique_id":"([^"]+)"/.exec(line.toString("latin1"))?.[1];
      if (!id)
        throw new Error(`a line of ${file} without unique_id: ${line.toString().slice(0, 200)}`);
      out.set(id, line);
    }
  }
  return out;
}

/** unique_ids of the stream's entries, in order (duplicates kept). */
async function streamIds(redis: Redis): Promise<string[]> {
  const entries = await redis.xrangeBuffer(STREAM, "-", "+");
  return entries.map(
    ([, f]) => /"unique_id":"([^"]+)"/.exec((f[1] as Buffer).toString("latin1"))?.[1] ?? "?",
  );
}

/** Everything read and acknowledged, and the alert function's queue drained. */
async function settled(redis: Redis): Promise<void> {
  await until(
    "the stream to be processed",
    async () => {
      const groups = (await redis.xinfo("GROUPS", STREAM)) as unknown[][];
      const g = groups.find((x) => x[1] === GROUP);
      if (!g) return false;
      const o: Record<string, unknown> = {};
      for (let i = 0; i + 1 < g.length; i += 2) o[String(g[i])] = g[i + 1];
      return Number(o.pending) === 0 && Number(o.lag) === 0;
    },
    60_000,
  );
  await until(
    "the alert queue to drain",
    async () => (await redis.xlen("waf:local-lambda:queue:waf-alerter")) === 0,
  );
}

async function pointCount(stack: Stack): Promise<number> {
  const rows = await influxRows(stack.influxUrl, DB, 'SELECT count("severity") FROM "waf_events"');
  return Number(rows[0]?.count ?? 0);
}

/**
 * Event alerts listed. Campaign alerts (all this traffic comes from 127.0.0.1) come on top and
 * are not counted; they are told by their tx_id too, as the listed alert may lack its `kind`.
 */
async function alertTxIds(redis: Redis): Promise<string[]> {
  return (await redis.lrange(ALERTS, 0, -1))
    .map((a) => JSON.parse(a) as { tx_id: string; kind?: string })
    .filter((a) => a.kind !== "campaign" && !a.tx_id.startsWith("campaign:"))
    .map((a) => a.tx_id);
}

function expectedOf(records: Map<string, Buffer>) {
  const levels: Record<string, number> = {};
  const critical: string[] = [];
  for (const [id, line] of records) {
    const r = scoreRecord(line.toString("utf8"), settings);
    if (!r.ok) throw new Error(`a real record did not parse: ${r.reason}`);
    levels[r.score.level] = (levels[r.score.level] ?? 0) + 1;
    if (r.score.alert) critical.push(id);
  }
  return { levels, critical: critical.sort() };
}

interface World {
  stack: Stack;
  waf: RunningWaf;
  redis: Redis;
  dir: string;
  ship(): Promise<ShipProcess>;
}

async function world(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), "waf-realwaf-"));
  const stack = await startStack({
    logDir: join(dir, "logs"),
    influxApi: "v1",
    env: { BATCH_SIZE: "50", BATCH_WINDOW_MS: "20", MAX_IN_FLIGHT: "2", LOG_LEVEL: "warn" },
  });
  const waf = await startWaf({ dir: join(dir, "nginx") }).catch(async (err) => {
    await stack.stop();
    throw err;
  });
  return {
    stack,
    waf,
    dir,
    redis: new Redis(stack.redisUrl),
    ship: () =>
      startShipProcess({
        paths: [`${waf.auditLog}*`],
        stateFile: join(dir, "ship.state.json"),
        env: { REDIS_URL: stack.redisUrl, LOG_LEVEL: "info", SHIP_HEALTH_PORT: "0" },
        logFile: join(dir, "logs", "ship.log"),
      }),
  };
}

async function teardown(w: World | undefined): Promise<void> {
  await w?.redis.quit();
  await w?.waf.stop();
  await w?.stack.stop();
}

describe("a real nginx + ModSecurity + CRS shipped by waf ship", () => {
  let w: World;
  beforeAll(async () => {
    w = await world();
  });
  afterAll(() => teardown(w));

  it("turns N attack and M benign requests into exactly one point per logged transaction, alerts for the critical ones, nothing pending", async () => {
    // The corpus tests whose record was critical, so the sample holds some for sure.
    const labels = corpusJson<{ test: string }>("labels-crs3-pl1.jsonl.gz");
    const criticalTests = new Set(
      corpusLines("crs3-pl1.jsonl.gz").flatMap((line, i) => {
        const r = scoreRecord(line.toString("utf8"), settings);
        return r.ok && r.score.alert ? [labels[i]?.test as string] : [];
      }),
    );
    const quick = quickRequests();
    const attacks = quick.filter(
      (r, i) => r.kind === "attack" && (criticalTests.has(r.test) || i % 8 === 0),
    );
    const benign = quick.filter((r, i) => r.kind === "benign" && i % 3 === 0);
    const shipper = await w.ship();
    try {
      const statuses = await sendAll(w.waf.port, [...attacks, ...benign] as CorpusRequest[], 4);
      expect(statuses.filter((s) => s === 403).length).toBeGreaterThan(attacks.length / 2);
      expect(statuses.every((s) => s !== undefined)).toBe(true);

      // ModSecurity writes a transaction's record once the response is done: wait for the
      // stream to hold every one the log holds.
      const logged = await until("every logged transaction on the stream", async () => {
        const records = auditRecords([w.waf.auditLog]);
        const onStream = new Set(await streamIds(w.redis));
        return records.size > 0 && [...records.keys()].every((id) => onStream.has(id))
          ? records
          : undefined;
      });
      await settled(w.redis);
      const { levels, critical } = expectedOf(logged);
      expect(logged.size).toBeGreaterThan(attacks.length / 2);
      expect(critical.length).toBeGreaterThanOrEqual(10);

      const ids = await streamIds(w.redis);
      expect(ids).toHaveLength(logged.size); // shipped once each: no restart, no rotation
      expect(new Set(ids)).toEqual(new Set(logged.keys()));
      expect(await pointCount(w.stack)).toBe(logged.size);
      const byLevel = await influxRows(
        w.stack.influxUrl,
        DB,
        'SELECT count("severity") FROM "waf_events" GROUP BY "severity_level"',
      );
      expect(Object.fromEntries(byLevel.map((r) => [r.severity_level, Number(r.count)]))).toEqual(
        levels,
      );
      expect((await alertTxIds(w.redis)).sort()).toEqual(critical);
      expect(await w.redis.xlen("waf-realtime:dlq")).toBe(0);

      const health = (await (await fetch(shipper.healthUrl as string)).json()) as Record<
        string,
        unknown
      >;
      expect(health).toMatchObject({ status: "ok", shipped: logged.size, lag_bytes: 0, errors: 0 });
    } finally {
      expect(await shipper.stop("SIGTERM")).toBe(0);
    }
  }, 120_000);
});

describe("waf ship SIGKILLed twice and the log rotated by copytruncate, over 1,000 real records", () => {
  let w: World;
  beforeAll(async () => {
    w = await world();
  });
  afterAll(() => teardown(w));

  it("ends with the stream's unique_ids equal to the audit logs', exactly one point per transaction in InfluxDB 1.x, and a replay that changes nothing", async () => {
    const producing = quickRequests().filter((r) => r.records === 1 && r.kind === "attack");
    const chunks = [0, 300, 600, 850, 1100].map((from, i, a) =>
      producing.slice(from, a[i + 1] ?? 1100),
    );
    expect(chunks.flat().length).toBeGreaterThanOrEqual(1100);
    const live = w.waf.auditLog;
    const rotated = `${live}.1`;
    const onStream = async () => (await w.redis.xlen(STREAM).catch(() => 0)) as number;

    let shipper = await w.ship();
    await sendAll(w.waf.port, chunks[0] as CorpusRequest[], 4);
    await until("the shipper to be busy", async () => (await onStream()) > 0);
    shipper.child.kill("SIGKILL"); // 1st: mid-run, checkpoint possibly behind
    await shipper.stop();
    shipper = await w.ship();

    await sendAll(w.waf.port, chunks[1] as CorpusRequest[], 4);
    // The real logrotate with the committed configuration (copytruncate), while the shipper is
    // still reading what was just written.
    const conf = join(w.dir, "logrotate.conf");
    const shipped = readFileSync(join(ROOT, "deploy/logrotate-modsecurity"), "utf8");
    writeFileSync(conf, shipped.replace("/var/log/nginx/modsec_audit.log", live), { mode: 0o644 });
    execFileSync("logrotate", ["-f", "-s", join(w.dir, "logrotate.state"), conf]);
    expect(statSync(rotated).size).toBeGreaterThan(0);
    await sendAll(w.waf.port, chunks[2] as CorpusRequest[], 4);
    shipper.child.kill("SIGKILL"); // 2nd: right after a burst
    await shipper.stop();
    await sendAll(w.waf.port, chunks[3] as CorpusRequest[], 4);
    shipper = await w.ship();

    try {
      const logged = await until(
        "every logged transaction on the stream",
        async () => {
          const records = auditRecords([rotated, live]);
          const ids = new Set(await streamIds(w.redis));
          return [...records.keys()].every((id) => ids.has(id)) ? records : undefined;
        },
        60_000,
      );
      expect(logged.size).toBeGreaterThanOrEqual(1000);
      await settled(w.redis);
      const ids = await streamIds(w.redis);
      expect(new Set(ids)).toEqual(new Set(logged.keys()));
      const duplicates = ids.length - new Set(ids).size;
      expect(await pointCount(w.stack)).toBe(logged.size);
      const { critical } = expectedOf(logged);
      expect((await alertTxIds(w.redis)).sort()).toEqual(critical);

      // At-least-once is harmless: replayed records (critical ones among them) rewrite their
      // own points and alert nobody twice.
      const replayed = [...logged.entries()].filter(
        ([id], i) => critical.includes(id) || i % 50 === 0,
      );
      expect(replayed.length).toBeGreaterThan(critical.length);
      const before = await influxRows(w.stack.influxUrl, DB, 'SELECT * FROM "waf_events"');
      const p = w.redis.pipeline();
      for (const [, line] of replayed) p.xadd(STREAM, "*", "event", line);
      await p.exec();
      await settled(w.redis);
      expect(await w.redis.xlen(STREAM)).toBe(ids.length + replayed.length);
      expect(await influxRows(w.stack.influxUrl, DB, 'SELECT * FROM "waf_events"')).toEqual(before);
      expect((await alertTxIds(w.redis)).sort()).toEqual(critical);
      // For the report: how many records the kills and the rotation made the shipper send twice.
      console.info(`shipper: ${logged.size} transactions, ${duplicates} sent twice`);
    } finally {
      expect(await shipper.stop("SIGTERM")).toBe(0);
    }
  }, 120_000);
});
