/**
 * `npx tsx bench/probe.ts [--records N] [--batch-size N] [--runs N]`: the pipeline's drain phase
 * alone (phase 1 of `npm run bench`), for measuring one change at a time. Prints CPU µs per
 * record per process and records/s; medians over the runs. Not part of `npm test`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { resolveStage } from "../infra/stages.ts";
import { startRedis, startVictoriaMetrics } from "../local/services.ts";
import { startStack } from "../local/stack.ts";
import { benchScorerEnv } from "./core.ts";
import { CpuMeter, progress, RssSampler } from "./measure.ts";
import { drain, groupInfo } from "./pipeline.ts";
import { recordMix } from "./records.ts";
import { xaddMix } from "./redis-ceiling.ts";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

const stage = resolveStage("production");
const records = arg("--records", 100_000);
const runs = arg("--runs", 3);
const batchSize = arg("--batch-size", stage.reader.batchSize);
const mix = recordMix(`probe${Date.now().toString(36)}`, Date.now());
const logDir = mkdtempSync(join(os.tmpdir(), "waf-probe-"));
const redisServer = await startRedis();
const vm = await startVictoriaMetrics();
const stack = await startStack({
  redisUrl: redisServer.url,
  influxUrl: vm.url,
  readerBundle: true,
  logDir,
  env: {
    ...benchScorerEnv(stage.reader.maxRecordBytes),
    BATCH_SIZE: String(batchSize),
    BATCH_WINDOW_MS: String(stage.reader.batchWindowMs),
    MAX_IN_FLIGHT: String(stage.reader.maxInFlight),
    LOG_LEVEL: "info",
  },
});
const redis = new Redis(redisServer.url);
const rows: Array<Record<string, number>> = [];
try {
  let next = 0;
  for (let run = 0; run <= runs; run++) {
    await stack.stopReader();
    const n = run === 0 ? Math.min(20_000, records) : records; // run 0 warms up
    await xaddMix(redis, "waf-realtime", mix, next, n);
    next += n;
    const before = await groupInfo(redis);
    await stack.startReader();
    const meter = new CpuMeter(() => ({
      reader: stack.reader().pid,
      runtime: stack.runtime().pid,
      redis: redisServer.pid,
      vm: vm.pid,
    }));
    meter.start();
    const rss = new RssSampler(stack.reader().pid as number);
    const d = await drain(redis, before, n, 300);
    const cores = meter.stop();
    const readerRss = rss.stop();
    if (run === 0) continue;
    const row: Record<string, number> = { records_per_s: Math.round(d.done / d.seconds) };
    for (const [k, c] of Object.entries(cores))
      row[`${k}_us`] = Math.round((c * d.seconds * 1e6) / d.done);
    row.reader_peak_rss_mb = Math.round(readerRss.peakMb);
    row.load = Math.round((os.loadavg()[0] ?? 0) * 10) / 10;
    progress(JSON.stringify(row));
    rows.push(row);
    await sleep(300);
  }
  const median = (k: string) => {
    const v = rows.map((r) => r[k] ?? 0).sort((a, b) => a - b);
    return v[Math.floor(v.length / 2)];
  };
  const keys = Object.keys(rows[0] ?? {});
  process.stdout.write(
    `${JSON.stringify({ batch_size: batchSize, records, ...Object.fromEntries(keys.map((k) => [k, median(k)])) })}\n`,
  );
} finally {
  await stack.stop();
  await redis.quit();
  await Promise.allSettled([vm.stop(), redisServer.stop()]);
  rmSync(logDir, { recursive: true, force: true });
}
