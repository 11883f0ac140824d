/**
 * The short form of `npm run bench` inside `npm test`: it runs end to end against real servers
 * and prints one JSON object with every figure. Only the shape is checked: every figure is there
 * and is a finite positive number. Speed is never asserted here (STYLE: no timing assertions);
 * `npm run bench` measures it.
 */
import { execFile } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

const REQUIRED = [
  "redis_ceiling_records_per_s",
  "pipeline_records_per_s",
  "pipeline_vs_redis_ceiling",
  "json_parse_records_per_s",
  "core_records_per_s",
  "core_vs_json_parse",
  "p50_xadd_to_point_ms",
  "p99_xadd_to_point_ms",
  "p99_xadd_to_alert_ms",
  "reader_peak_rss_mb",
  "reader_rss_mb_backlog_1m",
  "lambda_usd_per_million",
  "naive_lambda_usd_per_million",
  "reader_cpu_us_per_record",
  "scorer_cpu_us_per_record",
  "json_parse_us_per_record",
  "reader_cpu_vs_json_parse",
  "scorer_cpu_vs_json_parse",
  "load_avg_max",
] as const;

function runQuick(): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      process.execPath,
      ["--import", "tsx", "bench/run.ts", "--quick", "--json"],
      { cwd: ROOT, timeout: 150_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`bench --quick failed: ${err.message}\n${stderr.slice(-4000)}`));
        else resolvePromise({ stdout, stderr });
      },
    );
  });
}

describe("npm run bench -- --quick --json", () => {
  it("prints every figure as one JSON object on the last stdout line", async () => {
    const { stdout } = await runQuick();
    const lines = stdout.split("\n");
    expect(lines.at(-1)).toBe(""); // the object ends with a newline, nothing after it
    const result = JSON.parse(lines.at(-2) ?? "") as Record<string, unknown>;
    for (const key of REQUIRED) {
      const value = result[key];
      expect(typeof value, key).toBe("number");
      expect(Number.isFinite(value as number) && (value as number) > 0, `${key} = ${value}`).toBe(
        true,
      );
    }
    expect(result.mode).toBe("quick");
    const ship = result.ship as Record<string, unknown>;
    for (const key of ["ship_records_per_s", "xadd_ceiling_records_per_s", "ship_vs_xadd_ceiling"])
      expect((ship[key] as number) > 0, `ship.${key} = ${ship[key]}`).toBe(true);
    // The Redis Cluster phase: both configurations measured, every record drained.
    const cluster = result.cluster as Record<string, unknown>;
    const positive = (value: unknown, name: string) => {
      expect(typeof value, name).toBe("number");
      expect(Number.isFinite(value as number) && (value as number) > 0, `${name} = ${value}`).toBe(
        true,
      );
    };
    for (const key of [
      "cluster_shard1_records_per_s",
      "cluster_shard3_readers2_records_per_s",
      "cluster_shard3_vs_shard1",
      "records_per_s_per_reader_task",
      "records_per_s_per_shard",
      "cluster_backlog_records",
    ])
      positive(cluster[key], `cluster.${key}`);
    const configs = ["shard1", "shard3_readers2"] as const;
    const per = (key: string) => cluster[key] as Record<(typeof configs)[number], unknown>;
    for (const c of configs) {
      positive(per("cluster_drain_s")[c], `cluster.cluster_drain_s.${c}`);
      const cpu = per("cluster_cpu_us_per_record")[c] as Record<string, unknown>;
      for (const proc of ["readers", "runtime", "redis"]) positive(cpu[proc], `cpu ${c}.${proc}`);
      expect(per("cluster_drained_records")[c], `drained ${c}`).toBe(
        cluster.cluster_backlog_records,
      );
      expect(per("cluster_dead_lettered")[c], `dead-lettered ${c}`).toBe(
        per("cluster_invalid_records")[c],
      );
    }
    expect(cluster.cluster_complete).toBe(true);
    // Three shards, each on the stream: the producer spread the records over all of them.
    const byShard = per("cluster_records_by_shard").shard3_readers2 as number[];
    expect(byShard).toHaveLength(3);
    for (const n of byShard) positive(n, "records in a shard");
  }, 180_000);
});
