/**
 * The whole pipeline on a real three-primary Redis Cluster and, the same suite, on a single node
 * (issue 15): `STREAM_SHARDS=3`, records placed by `waf replay`'s producer, two readers of which
 * one is SIGKILLed mid-run — and, separately, the whole `npm start` process group SIGKILLed and
 * started again. Afterwards: exactly one point per valid record (InfluxDB 1.x overwrites a
 * rewritten point, so a count is exact), one alert per critical record, one dead-letter entry
 * per invalid record, nothing pending.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { replay, sourceOf } from "../cli/replay.ts";
import { loadConfig } from "../core/config.ts";
import type { RedisClient } from "../core/lib/redis.ts";
import { type StreamNames, streamNames } from "../core/stream/keys.ts";
import { shardedStatus } from "../core/stream/status.ts";
import { openRedis, topologyOf } from "../functions/shared/runtime.ts";
import {
  type RunningCluster,
  type RunningService,
  startInfluxDB1,
  startRedis,
  startRedisCluster,
} from "../local/services.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { envelope } from "./fixtures/records.ts";
import { spawnWatched, type Watched } from "./process.ts";
import { influxRows } from "./readback.ts";
import { until } from "./wait.ts";

const ROOT = join(import.meta.dirname, "..");
const DB = "waf-topology";
const SHARDS = 3;

/** `valid` records (a third of them critical) and `invalid` ones, shuffled. */
function records(prefix: string, valid: number, invalid: number) {
  const lines: string[] = [];
  const critical: string[] = [];
  for (let i = 0; i < valid; i++) {
    const tx = `${prefix}-${i}`;
    const isCritical = i % 3 === 0;
    if (isCritical) critical.push(tx);
    lines.push(
      JSON.stringify(
        envelope({
          id: tx,
          ip: `198.51.${(i >> 8) & 255}.${i & 255}`,
          anomaly: isCritical ? 65 : 5,
          rules: [isCritical ? "942100" : "920350"],
        }),
      ),
    );
  }
  for (let i = 0; i < invalid; i++) {
    lines.push(
      i % 2 === 0
        ? `not json ${prefix} ${i}`
        : JSON.stringify({ transaction: { id: `${prefix}-bad-${i}` } }),
    );
  }
  // Deterministic interleaving: invalid records among the valid ones.
  return { text: lines.sort().join("\n"), critical, valid, invalid };
}

async function settled(redis: RedisClient, names: StreamNames, expectRead: number) {
  let last: unknown;
  try {
    return await until(
      "every record read and settled",
      async () => {
        const s = await shardedStatus(redis, names, { withConsumers: true });
        last = s;
        return s.entriesRead >= expectRead && s.pending === 0 && s.lag === 0 && s;
      },
      90_000,
      250,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
  }
}

async function outcomes(redis: RedisClient, names: StreamNames, influxUrl: string) {
  const points = Number(
    (await influxRows(influxUrl, DB, 'SELECT count("severity") FROM "waf_events"'))[0]?.count ?? 0,
  );
  const alerts = (await redis.lrange("waf-alerts", 0, -1)).map(
    (a) => JSON.parse(a) as { tx_id: string; kind?: string },
  );
  const dlq = (await Promise.all(names.shards.map((s) => redis.xrange(s.dlq, "-", "+")))).flat();
  // An entry ID is unique within its shard's stream only.
  const entryIds = dlq.map(
    ([, f]) => `${f[f.indexOf("stream") + 1]}/${f[f.indexOf("entry_id") + 1]}`,
  );
  return { points, alerts: alerts.filter((a) => a.kind !== "campaign"), dlq: dlq.length, entryIds };
}

/**
 * Exactly once: one point per valid record, one alert per critical record, one DLQ entry per
 * invalid record and no entry dead-lettered twice.
 */
async function expectEachOnce(
  redis: RedisClient,
  names: StreamNames,
  influxUrl: string,
  batch: ReturnType<typeof records>,
) {
  const o = await outcomes(redis, names, influxUrl);
  expect(o.points).toBe(batch.valid);
  expect(o.alerts.map((a) => a.tx_id).sort()).toEqual([...batch.critical].sort());
  expect(o.dlq).toBe(batch.invalid);
  expect(new Set(o.entryIds).size).toBe(batch.invalid);
}

type Topology = "cluster" | "single";

describe.each<Topology>(["cluster", "single"])("STREAM_SHARDS=3 on a %s Redis", (topology) => {
  let redisServer: RunningCluster | RunningService | undefined;
  let influx: RunningService | undefined;
  let stack: Stack | undefined;
  const clients: RedisClient[] = [];
  /** `npm start` groups still running when a test ends early (a failed wait): killed here. */
  const groups: Watched[] = [];
  afterEach(async () => {
    for (const g of groups.splice(0)) {
      if (g.child.exitCode === null && g.child.signalCode === null) {
        process.kill(-(g.child.pid as number), "SIGKILL");
        await g.exited;
      }
    }
    for (const c of clients.splice(0)) c.disconnect();
    await stack?.stop();
    stack = undefined;
    await influx?.stop();
    await redisServer?.stop();
  });

  async function services() {
    redisServer = topology === "cluster" ? await startRedisCluster() : await startRedis();
    influx = await startInfluxDB1({ database: DB });
    const redis = openRedis(redisServer.url, topology);
    clients.push(redis);
    const config = loadConfig({ STREAM_SHARDS: String(SHARDS) });
    return { redis, names: streamNames(config, topologyOf(config, redis)), influxUrl: influx.url };
  }

  const env = {
    LOG_LEVEL: "warn",
    POWERTOOLS_METRICS_DISABLED: "true",
    STREAM_SHARDS: String(SHARDS),
    INFLUXDB_BUCKET: DB,
    CAMPAIGN_MIN_EVENTS: "0",
    BATCH_SIZE: "20",
    CLAIM_IDLE_MS: "2000",
    MAX_RETRIES: "3",
  };

  it("processes every record exactly once with two readers, one SIGKILLed mid-run", async () => {
    const { redis, names, influxUrl } = await services();
    expect(new Set(names.shards.map((s) => s.stream)).size).toBe(SHARDS);
    stack = await startStack({
      logDir: mkdtempSync(join(tmpdir(), `waf-topology-${topology}-`)),
      redisUrl: redisServer?.url,
      influxUrl,
      influxApi: "v1",
      env: { ...env, CONSUMER_NAME: "reader-a" },
    });
    const second = await stack.addReader("reader-b", { CONSUMER_NAME: "reader-b" });
    const batch = records("t", 600, 30);
    const sending = replay(redis, [sourceOf("records", batch.text)], {
      shards: names.shards,
      field: "event",
      rate: 300,
    });
    await until("reader-b holds work", async () => {
      const s = await shardedStatus(redis, names, { withConsumers: true });
      return s.consumers.some((c) => c.name === "reader-b" && c.pending > 0);
    });
    await second.stop("SIGKILL");
    expect((await sending).sent).toBe(630);
    await settled(redis, names, 630);
    await expectEachOnce(redis, names, influxUrl, batch);
    // Every shard got records: the producer spread them.
    const s = await shardedStatus(redis, names);
    expect(s.shards.every((x) => x.length > 0)).toBe(true);
  }, 120_000);

  it("processes every record exactly once when the whole npm start process group is SIGKILLed and started again", async () => {
    const { redis, names, influxUrl } = await services();
    const logDir = mkdtempSync(join(tmpdir(), `waf-topology-start-${topology}-`));
    const npmStart = () => {
      const started = spawnWatched(
        process.execPath,
        ["--import", "tsx", "local/start.ts", "--view-port", "0"],
        {
          cwd: ROOT,
          env: {
            ...process.env,
            ...env,
            REDIS_URL: redisServer?.url,
            INFLUXDB_URL: influxUrl,
            INFLUXDB_API: "v1",
            WAF_LOG_DIR: logDir,
            CONSUMER_NAME: "local-reader",
          },
          detached: true,
        },
      );
      groups.push(started);
      return started;
    };
    const first = npmStart();
    await until(
      "npm start is up",
      () => first.output().includes("Ctrl-C stops everything"),
      60_000,
    );
    const batch = records("k", 600, 30);
    const sending = replay(redis, [sourceOf("records", batch.text)], {
      shards: names.shards,
      field: "event",
      rate: 300,
    });
    await until(
      "some records done",
      async () => (await shardedStatus(redis, names)).entriesRead > 100,
    );
    // A crash of everything at once: the processes in their own groups follow their parent.
    process.kill(-(first.child.pid as number), "SIGKILL");
    await first.exited;
    expect((await sending).sent).toBe(630);
    const again = npmStart();
    try {
      await until(
        "npm start is up again",
        () => again.output().includes("Ctrl-C stops everything"),
        60_000,
      );
      await settled(redis, names, 630);
      await expectEachOnce(redis, names, influxUrl, batch);
    } finally {
      process.kill(-(again.child.pid as number), "SIGINT");
      await again.exited;
    }
  }, 180_000);
});
