/**
 * The shipper against this machine's own XADD ceiling, in one run: a pre-written audit log of
 * real ModSecurity + CRS records (test/fixtures/realwaf, each copy with its own unique_id;
 * ~100 MB) shipped by `waf ship` (a child process, as deployed) into a throwaway Redis, and the
 * same records XADDed from memory with the same command (`XADD key MAXLEN ~ N * event <record>`),
 * pipelined 500 at a time with 4 pipelines in flight, like the shipper. The ratio is what reading files, splitting lines,
 * batching and checkpointing cost against Redis itself (target ≥ 0.5).
 *
 *   npx tsx bench/ship.ts [--mb 100] [--runs 3] [--json]     (starts its own Redis)
 *
 * `npm run bench` calls {@link measureShip} and reports it under the JSON key `ship`.
 */
import { createWriteStream, mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { sleep } from "../core/lib/time.ts";
import { startRedis } from "../local/services.ts";
import { startShipProcess } from "../local/waf.ts";
import { corpusLines } from "../test/fixtures/records.ts";
import { procMemory, progress, round1 } from "./measure.ts";

export interface ShipBenchResult {
  /** Records per second `waf ship` put on the stream from the file (median of the runs). */
  ship_records_per_s: number;
  /** Pipelined XADD of the same records from memory (median of the runs). */
  xadd_ceiling_records_per_s: number;
  /** ship / ceiling (target ≥ 0.5). */
  ship_vs_xadd_ceiling: number;
  ship_records: number;
  ship_file_mb: number;
  ship_record_mean_bytes: number;
  /** Peak RSS of the shipper process (kernel high-water mark), largest over the runs. */
  ship_peak_rss_mb: number;
  runs: number;
  ship_runs_records_per_s: number[];
  xadd_runs_records_per_s: number[];
}

/** The corpus's records, the n-th copy of each with `-n` appended to its unique_id (bytes kept). */
function* records(): Generator<Buffer> {
  const base = corpusLines("crs3-pl1.jsonl.gz").map((b) => b.toString("latin1"));
  for (let n = 0; ; n++)
    for (const r of base)
      yield Buffer.from(r.replace(/"unique_id":"([^"]+)"/, `"unique_id":"$1-${n}"`), "latin1");
}

/** Writes ~`mb` MB of records to `file`; returns them (the ceiling sends the same ones). */
async function writeLog(file: string, mb: number): Promise<Buffer[]> {
  const out = createWriteStream(file);
  const kept: Buffer[] = [];
  let bytes = 0;
  const nl = Buffer.from("\n");
  for (const r of records()) {
    if (bytes >= mb * 1_000_000) break;
    kept.push(r);
    bytes += r.length + 1;
    if (!out.write(Buffer.concat([r, nl])))
      await new Promise<void>((res) => out.once("drain", () => res()));
  }
  await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
  return kept;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * The ceiling: the records already in memory, XADDed in pipelines of 500 with 4 in flight (as
 * many as the shipper keeps), nothing else done.
 */
async function ceiling(redis: Redis, key: string, recs: Buffer[], maxLen: number): Promise<number> {
  await redis.del(key);
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < recs.length) {
      const from = next;
      next += 500;
      const p = redis.pipeline();
      for (const r of recs.slice(from, from + 500))
        p.xadd(key, "MAXLEN", "~", maxLen, "*", "event", r);
      for (const [err] of (await p.exec()) ?? []) if (err) throw err;
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const rate = recs.length / ((performance.now() - t0) / 1000);
  await redis.del(key);
  return rate;
}

async function shipOnce(
  redisUrl: string,
  redis: Redis,
  key: string,
  file: string,
  count: number,
  dir: string,
  run: number,
): Promise<{ rate: number; peakMb: number }> {
  await redis.del(key);
  const state = join(dir, `state-${run}.json`);
  const shipper = await startShipProcess({
    paths: [file],
    stateFile: state,
    env: { REDIS_URL: redisUrl, STREAM_KEY: key, LOG_LEVEL: "warn", SHIP_HEALTH_PORT: undefined },
    logFile: join(dir, "ship.log"),
  });
  // From "ready" (files listed, nothing read yet) to the last record on the stream.
  const t0 = performance.now();
  let peakMb = 0;
  for (;;) {
    const m = shipper.child.pid ? procMemory(shipper.child.pid) : undefined;
    if (m) peakMb = Math.max(peakMb, m.hwmMb);
    if ((await redis.xlen(key)) >= count) break;
    if (shipper.child.exitCode !== null) throw new Error(`waf ship exited (see ${dir}/ship.log)`);
    await sleep(10);
  }
  const seconds = (performance.now() - t0) / 1000;
  const m = shipper.child.pid ? procMemory(shipper.child.pid) : undefined;
  if (m) peakMb = Math.max(peakMb, m.hwmMb);
  await shipper.stop("SIGTERM");
  await redis.del(key);
  return { rate: count / seconds, peakMb };
}

/**
 * Writes the audit log, then alternates the XADD ceiling and `waf ship` `runs` times against
 * the Redis at `redisUrl` (keys `bench:ship*`, deleted afterwards).
 */
export async function measureShip(o: {
  redisUrl: string;
  mb?: number;
  runs?: number;
  maxLen?: number;
}): Promise<ShipBenchResult> {
  const mb = o.mb ?? 100;
  const runs = o.runs ?? 3;
  const maxLen = o.maxLen ?? 1_000_000;
  const dir = mkdtempSync(join(os.tmpdir(), "waf-bench-ship-"));
  const redis = new Redis(o.redisUrl);
  try {
    const file = join(dir, "modsec_audit.log");
    progress(`ship: writing ~${mb} MB of real audit records to ${file}`);
    const recs = await writeLog(file, mb);
    const size = statSync(file).size;
    const ships: number[] = [];
    const xadds: number[] = [];
    let peak = 0;
    for (let run = 1; run <= runs; run++) {
      xadds.push(await ceiling(redis, "bench:ship:ceiling", recs, maxLen));
      const s = await shipOnce(o.redisUrl, redis, "bench:ship", file, recs.length, dir, run);
      ships.push(s.rate);
      peak = Math.max(peak, s.peakMb);
      progress(
        `ship: run ${run}/${runs}: waf ship ${Math.round(s.rate)} records/s, XADD ceiling ${Math.round(xadds.at(-1) as number)} records/s`,
      );
    }
    const ship = median(ships);
    const xadd = median(xadds);
    return {
      ship_records_per_s: Math.round(ship),
      xadd_ceiling_records_per_s: Math.round(xadd),
      ship_vs_xadd_ceiling: Math.round((ship / xadd) * 1000) / 1000,
      ship_records: recs.length,
      ship_file_mb: round1(size / 1_000_000),
      ship_record_mean_bytes: Math.round(size / recs.length),
      ship_peak_rss_mb: round1(peak),
      runs,
      ship_runs_records_per_s: ships.map(Math.round),
      xadd_runs_records_per_s: xadds.map(Math.round),
    };
  } finally {
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const argv = process.argv.slice(2);
  const num = (name: string, def: number) => {
    const i = argv.indexOf(name);
    return i === -1 ? def : Number(argv[i + 1]);
  };
  const server = await startRedis();
  try {
    const r = await measureShip({
      redisUrl: server.url,
      mb: num("--mb", 100),
      runs: num("--runs", 3),
    });
    process.stdout.write(
      argv.includes("--json")
        ? `${JSON.stringify(r)}\n`
        : `${Object.entries(r)
            .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
            .join("\n")}\n`,
    );
  } finally {
    await server.stop();
  }
}
