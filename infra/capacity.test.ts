import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  BENCHMARK,
  type BenchmarkInputs,
  HEADROOM,
  HOURS_PER_MONTH,
  PLANNED_RATES,
  PRICES,
  perTaskThroughput,
  planCapacity,
  renderScalingSection,
} from "./capacity.ts";
import { resolveStage } from "./stages.ts";

/** Round numbers, so the expectations below can be worked out by hand. */
const measured = (values: Record<keyof BenchmarkInputs, number>): BenchmarkInputs =>
  Object.fromEntries(
    Object.entries(values).map(([k, value]) => [
      k,
      { value, unit: "", from: "test", placeholder: false },
    ]),
  ) as unknown as BenchmarkInputs;

const BENCH = measured({
  readerCpuUsPerRecord: 50, // 20,000 records/s per vCPU
  recordsPerSecondPerShard: 50_000,
  scorerMsPerBatch: 40, // 4 × 80 records per 40 ms = 8,000 records/s per task
  alertInvocationsPerMillionRecords: 10_000,
  alerterMsPerInvocation: 20,
  natBytesPerRecord: 100,
});

/** Production's shape at batch 80, which the figures below are worked out by hand for. */
const production = resolveStage("production", { reader: { batchSize: 80 } });

describe("capacity plan", () => {
  it("bounds a task by its CPU or by in-flight batches per scorer round trip, whichever is lower", () => {
    expect(perTaskThroughput(production, BENCH)).toEqual({
      recordsPerSecond: 8_000,
      bound: "in-flight",
    });
    const fastScorer = measured({
      ...Object.fromEntries(Object.entries(BENCH).map(([k, v]) => [k, v.value])),
      scorerMsPerBatch: 10,
    } as Record<keyof BenchmarkInputs, number>);
    // 1 vCPU / 50 µs = 20,000 < 32,000
    expect(perTaskThroughput(production, fastScorer)).toEqual({
      recordsPerSecond: 20_000,
      bound: "cpu",
    });
  });

  it("sizes 100,000 events/s on production's shape, worked by hand", () => {
    const plan = planCapacity(production, 100_000, BENCH);
    // ⌈100,000 / (0.7 × 8,000)⌉ = ⌈17.86⌉
    expect(plan.tasks).toBe(18);
    // ⌈100,000 / (0.7 × 50,000)⌉ = ⌈2.86⌉; one replica each
    expect(plan.shards).toBe(3);
    expect(plan.redisNodes).toBe(6);
    // ⌈18 × 1.5⌉ × 4
    expect(plan.scorerReservedConcurrency).toBe(108);
    // 18 × 730 h × (1 vCPU × 0.03238 + 2 GB × 0.00356 + IPv4 0.005)
    expect(plan.monthlyUsd.fargate).toBeCloseTo(18 * 730 * (0.03238 + 2 * 0.00356 + 0.005), 6);
    // 6 × m7g.large
    expect(plan.monthlyUsd.elastiCache).toBeCloseTo(6 * 0.158 * 730, 6);
    // 2 gateways + 100 B × 100,000/s × 2,628,000 s = 26,280 GB
    expect(plan.monthlyUsd.nat).toBeCloseTo(2 * 0.045 * 730 + 26_280 * 0.045, 6);
    // full batches of 80: 2.628e11 records → 3.285e9 scorer calls of 40 ms at 1 GB,
    // 2.628e6 alerter calls of 20 ms at 0.5 GB
    const records = 100_000 * 730 * 3600;
    const scorerCalls = records / 80;
    const alerterCalls = (records / 1e6) * 10_000;
    const expectedLambda =
      (scorerCalls + alerterCalls) * 0.2e-6 +
      (scorerCalls * 0.04 * 1 + alerterCalls * 0.02 * 0.5) * 0.0000133334;
    expect(plan.monthlyUsd.lambda).toBeCloseTo(expectedLambda, 4);
    const { fargate, lambda, elastiCache, nat, xray, total } = plan.monthlyUsd;
    expect(total).toBeCloseTo(fargate + lambda + elastiCache + nat + xray, 6);
    expect(plan.limits).toEqual([]);
  });

  it("prices X-Ray at Lambda's default sampling, and not at all on a stage without tracing", () => {
    // 1,250 scorer and 1,000 alerter invocations/s: 1 + 5% of the rest, each
    const traces = 1 + 0.05 * 1_249 + (1 + 0.05 * 999);
    expect(planCapacity(production, 100_000, BENCH).monthlyUsd.xray).toBeCloseTo(
      traces * 730 * 3600 * 5e-6,
      6,
    );
    const untraced = resolveStage("production", { tracing: false });
    expect(planCapacity(untraced, 100_000, BENCH).monthlyUsd.xray).toBe(0);
  });

  it("never plans fewer tasks than the stage's minimum or fewer than one shard", () => {
    const tiny = planCapacity(production, 1, BENCH);
    expect(tiny.tasks).toBe(production.reader.minTasks);
    expect(tiny.shards).toBe(1);
    // one record per batch at 1 record/s: Lambda pays per request, not per batch size
    expect(tiny.monthlyUsd.lambda).toBeGreaterThan((730 * 3600 * 0.2e-6) / 2);
  });

  it("grows with the rate, never shrinks", () => {
    let previous = planCapacity(production, 1_000, BENCH);
    for (const rate of [5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000]) {
      const plan = planCapacity(production, rate, BENCH);
      expect(plan.tasks).toBeGreaterThanOrEqual(previous.tasks);
      expect(plan.shards).toBeGreaterThanOrEqual(previous.shards);
      expect(plan.monthlyUsd.total).toBeGreaterThan(previous.monthlyUsd.total);
      previous = plan;
    }
  });

  it("keeps every planned part below HEADROOM of what was measured", () => {
    for (const rate of PLANNED_RATES) {
      const plan = planCapacity(production, rate, BENCH);
      expect(rate / plan.tasks).toBeLessThanOrEqual(HEADROOM * plan.perTask.recordsPerSecond);
      expect(rate / plan.shards).toBeLessThanOrEqual(HEADROOM * plan.perShardRecordsPerSecond);
    }
  });

  it("names the limits a million events/s needs raised", () => {
    const plan = planCapacity(production, 1_000_000, BENCH);
    // ⌈1e6 / 5,600⌉ = 179 tasks → ⌈268.5⌉ × 4 = 1,076 in flight, past the default 1,000
    expect(plan.tasks).toBe(179);
    expect(plan.scorerReservedConcurrency).toBe(1_076);
    expect(plan.limits).toEqual([expect.stringContaining("Lambda concurrency quota ≥ 1,196")]);
    const slowShards = measured({
      ...Object.fromEntries(Object.entries(BENCH).map(([k, v]) => [k, v.value])),
      recordsPerSecondPerShard: 10_000,
    } as Record<keyof BenchmarkInputs, number>);
    expect(planCapacity(production, 1_000_000, slowShards).limits.join("; ")).toMatch(
      /STREAM_SHARDS above its maximum of 64.*ElastiCache nodes per cluster ≥ 286/,
    );
  });

  it("prices every node type the stage table uses", () => {
    for (const stage of ["dev", "staging", "production"]) {
      const cfg = resolveStage(stage);
      if (cfg.redis.mode === "managed") {
        expect(PRICES.elastiCacheNodeHour[cfg.redis.instance]).toBeGreaterThan(0);
      }
      expect(() => planCapacity(cfg, 10_000)).not.toThrow();
    }
    expect(HOURS_PER_MONTH).toBe(730);
  });
});

describe("docs/deploy.md Scaling section", () => {
  const DOC = new URL("../docs/deploy.md", import.meta.url);
  const BEGIN = "<!-- capacity:begin";
  const END = "<!-- capacity:end -->";

  it("marks every derived number while an input is a placeholder, and none once all are measured", () => {
    const withPlaceholders = renderScalingSection(production);
    expect(Object.values(BENCHMARK).some((i) => i.placeholder)).toBe(true);
    expect(withPlaceholders).toContain("inputs are placeholders");
    expect(withPlaceholders).toContain("**PLACEHOLDER**");
    const done = renderScalingSection(production, BENCH);
    expect(done).not.toMatch(/PLACEHOLDER|⚠/);
    expect(done).toContain("| 10,000 events/s | 100,000 events/s | 1,000,000 events/s |");
  });

  it("shows exactly what infra/capacity.ts computes for production, as Biome formats it", () => {
    const doc = readFileSync(DOC, "utf8");
    const start = doc.indexOf(BEGIN);
    const end = doc.indexOf(END);
    expect(start, `docs/deploy.md has no ${BEGIN} … ${END} block`).toBeGreaterThan(-1);
    expect(end).toBeGreaterThan(start);
    const open = doc.indexOf("-->", start) + "-->".length;
    const regenerated = formatMarkdown(
      `${doc.slice(0, open)}\n${renderScalingSection(resolveStage("production"))}\n${doc.slice(end)}`,
    );
    if (process.env.UPDATE_DOCS) {
      writeFileSync(DOC, regenerated);
      return;
    }
    expect(
      doc === regenerated,
      "docs/deploy.md's Scaling table is not what infra/capacity.ts computes: " +
        "run UPDATE_DOCS=1 npx vitest run infra/capacity.test.ts",
    ).toBe(true);
  });
});

/** The document as `biome format` would write it (the repository's formatter, docs included). */
function formatMarkdown(text: string): string {
  const biome = fileURLToPath(new URL("../node_modules/.bin/biome", import.meta.url));
  const result = spawnSync(biome, ["format", "--stdin-file-path=docs/deploy.md"], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    input: text,
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`biome format failed: ${result.stderr}`);
  return result.stdout;
}
