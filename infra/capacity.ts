/**
 * How many reader tasks, stream shards and Redis nodes a target event rate needs, and what that
 * costs a month on AWS: the arithmetic behind docs/deploy.md's "Scaling" section, from a stage's
 * settings (`stages.ts`) and a few measured inputs ({@link BENCHMARK}). Pure (no SST import);
 * `capacity.test.ts` checks it and keeps the doc's table equal to {@link renderScalingSection}
 * (`UPDATE_DOCS=1 npx vitest run infra/capacity.test.ts` rewrites it).
 *
 * Method, per target rate R (records/s, steady):
 * - a reader task moves at most min(CPU bound, in-flight bound) records/s: its vCPUs × 10⁶ / the
 *   reader's CPU µs per record, and `maxInFlight × batchSize` records per scorer round trip
 *   (`scorerMsPerBatch`): the reader waits on the scorer, it does not compute;
 * - tasks = ⌈R / (HEADROOM × per task)⌉, at least the stage's `minTasks`; shards (one stream
 *   shard per Redis primary, `STREAM_SHARDS`) = ⌈R / (HEADROOM × per shard)⌉; nodes = shards ×
 *   (1 + replicas per shard);
 * - the scorer's reservation must cover the readers' peak in flight, rolling deploys included
 *   (`validateStage`): ⌈tasks × deploymentMaxPercent / 100⌉ × maxInFlight;
 * - a month is 730 hours; prices are us-east-1 on-demand list prices ({@link PRICES}).
 */
import type { StageConfig } from "./stages.ts";

/** Plan every part to run at this share of what was measured: room for bursts and slow minutes. */
export const HEADROOM = 0.7;
export const HOURS_PER_MONTH = 730;
const SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600;
/** Lambda's default concurrency quota per account and region, and the 100 it keeps unreserved. */
export const LAMBDA_CONCURRENCY_QUOTA = 1000;
export const LAMBDA_UNRESERVED_MINIMUM = 100;
/** ElastiCache's default quota of nodes per cluster (cluster mode; adjustable up to 500). */
export const ELASTICACHE_NODES_PER_CLUSTER_QUOTA = 90;
/** Lambda's default X-Ray sampling: the first request each second and 5% of the rest. */
const XRAY_RESERVOIR_PER_S = 1;
const XRAY_RATE = 0.05;

/**
 * us-east-1 on-demand list prices (2025), USD. Check https://aws.amazon.com/pricing before
 * quoting; free tiers ignored.
 */
export const PRICES = {
  fargateArmVcpuHour: 0.03238,
  fargateArmGbHour: 0.00356,
  /** Every reader task has a public IPv4 address (SST's Cluster puts tasks in public subnets). */
  publicIpv4Hour: 0.005,
  lambdaPerRequest: 0.2 / 1e6,
  lambdaArmGbSecond: 0.0000133334,
  natGatewayHour: 0.045,
  natGatewayPerGb: 0.045,
  /** fck-nat on t4g.nano (non-production stages); its traffic costs EC2 data transfer. */
  natInstanceHour: 0.0042,
  natInstancePerGb: 0,
  xrayPerTrace: 5 / 1e6,
  /** ElastiCache for Redis OSS, per node-hour, by node type (without `cache.`). */
  elastiCacheNodeHour: {
    "t4g.micro": 0.016,
    "t4g.small": 0.032,
    "t4g.medium": 0.065,
    "m7g.large": 0.158,
    "m7g.xlarge": 0.316,
    "r7g.large": 0.219,
    "r7g.xlarge": 0.437,
  } as Record<string, number>,
} as const;

/** One measured input: its value, where it comes from, and whether it is still a placeholder. */
export interface BenchmarkInput {
  value: number;
  unit: string;
  /** Which figure of `npm run bench --json` (or of a deployed stage) to copy here. */
  from: string;
  /** true until the value is measured; the doc marks every number derived from it. */
  placeholder: boolean;
}

export interface BenchmarkInputs {
  /** CPU the reader spends per record (µs), at the production stage's batch size. */
  readerCpuUsPerRecord: BenchmarkInput;
  /** Records/s one stream shard on one Redis primary carries: producers' XADD plus read and ack. */
  recordsPerSecondPerShard: BenchmarkInput;
  /** One full batch's scorer round trip as the reader waits for it (ms): invoke + score + write. */
  scorerMsPerBatch: BenchmarkInput;
  /** Alert-function invocations per million records (one per batch that queued an alert). */
  alertInvocationsPerMillionRecords: BenchmarkInput;
  /** Billed duration of one alert invocation (ms). */
  alerterMsPerInvocation: BenchmarkInput;
  /** Bytes per record that leave the VPC through NAT: the point's share of the InfluxDB write, alert traffic. */
  natBytesPerRecord: BenchmarkInput;
}

/**
 * THE DATA BLOCK TO FILL from `npm run bench -- --json` (on the cluster, issue 15) and, for the
 * AWS-only figures, from a deployed stage's dashboard. Set `placeholder: false` on each value you
 * measured, then `UPDATE_DOCS=1 npx vitest run infra/capacity.test.ts`.
 */
export const BENCHMARK: BenchmarkInputs = {
  readerCpuUsPerRecord: {
    value: 34,
    unit: "µs",
    from: "`reader_cpu_us_per_record`, median of three `npm run bench -- --json` runs on 2026-12-01 (34, 34, 43) at production's batch 1000, single node (docs/benchmarks.md)",
    placeholder: false,
  },
  recordsPerSecondPerShard: {
    value: 24_900,
    unit: "records/s",
    from: "one primary's XADD and XREADGROUP/XACK ceilings combined, 1 / (1/30,827 + 1/129,838), medians of the same runs (`xadd_pipelined_records_per_s`, `redis_ceiling_records_per_s`); the cluster phase's per-shard figure (3,287) is bound by the one local runtime, not by Redis",
    placeholder: false,
  },
  scorerMsPerBatch: {
    value: 43,
    unit: "ms",
    from: "locally `scorer_batch_ms_alone_mean` at batch 1000 (42.6 ms, median of the same runs) is the floor without InfluxDB's network round trip; a deployed stage's Scorer duration p50 (dashboard) replaces it",
    placeholder: true,
  },
  alertInvocationsPerMillionRecords: {
    value: 548,
    unit: "per 1M records",
    from: "`lambda_requests_per_million` − 1,000,000 / batch size (1,548 − 1,000, median of the same runs; the bench's mix has one critical record in nine)",
    placeholder: false,
  },
  alerterMsPerInvocation: {
    value: 30,
    unit: "ms",
    from: "a deployed stage: Alerter duration p50 (dashboard)",
    placeholder: true,
  },
  natBytesPerRecord: {
    value: 120,
    unit: "bytes",
    from: "a deployed stage: NAT gateway BytesOutToDestination ÷ records processed",
    placeholder: true,
  },
};

export interface CapacityPlan {
  recordsPerSecond: number;
  /** What one task moves (before headroom), and which bound sets it. */
  perTask: { recordsPerSecond: number; bound: "cpu" | "in-flight" };
  perShardRecordsPerSecond: number;
  tasks: number;
  /** `STREAM_SHARDS` and Redis primaries. */
  shards: number;
  redisNodes: number;
  /** The scorer's reservation this fleet needs (peak in flight, rolling deploys included). */
  scorerReservedConcurrency: number;
  monthlyUsd: {
    fargate: number;
    lambda: number;
    elastiCache: number;
    nat: number;
    xray: number;
    total: number;
  };
  /** Account or product limits this plan needs raised, as sentences. */
  limits: string[];
}

const vcpus = (cfg: StageConfig) => Number.parseFloat(cfg.reader.cpu);
const memoryGb = (cfg: StageConfig) => Number.parseFloat(cfg.reader.memory);

/** What one reader task of `cfg` moves, records/s, and which bound sets it. */
export function perTaskThroughput(
  cfg: StageConfig,
  bench: BenchmarkInputs,
): CapacityPlan["perTask"] {
  const cpu = (vcpus(cfg) * 1e6) / bench.readerCpuUsPerRecord.value;
  const inFlight =
    (cfg.reader.maxInFlight * cfg.reader.batchSize * 1000) / bench.scorerMsPerBatch.value;
  return cpu <= inFlight
    ? { recordsPerSecond: cpu, bound: "cpu" }
    : { recordsPerSecond: inFlight, bound: "in-flight" };
}

/** Tasks, shards, nodes, reservation and monthly cost for `recordsPerSecond` on `cfg`'s shape. */
export function planCapacity(
  cfg: StageConfig,
  recordsPerSecond: number,
  bench: BenchmarkInputs = BENCHMARK,
): CapacityPlan {
  const perTask = perTaskThroughput(cfg, bench);
  const perShard = bench.recordsPerSecondPerShard.value;
  const tasks = Math.max(
    cfg.reader.minTasks,
    Math.ceil(recordsPerSecond / (HEADROOM * perTask.recordsPerSecond)),
  );
  const shards = Math.max(1, Math.ceil(recordsPerSecond / (HEADROOM * perShard)));
  const managed = cfg.redis.mode === "managed" ? cfg.redis : undefined;
  const redisNodes = managed ? shards * (1 + managed.replicasPerShard) : 0;
  const peakTasks = Math.ceil((tasks * cfg.reader.deploymentMaxPercent) / 100);
  const scorerReservedConcurrency = peakTasks * cfg.reader.maxInFlight;

  const fargate =
    tasks *
    HOURS_PER_MONTH *
    (vcpus(cfg) * PRICES.fargateArmVcpuHour +
      memoryGb(cfg) * PRICES.fargateArmGbHour +
      PRICES.publicIpv4Hour);

  // a batch holds what arrives at a task within the window, up to BATCH_SIZE
  const perBatch = Math.min(
    cfg.reader.batchSize,
    Math.max(1, (recordsPerSecond / tasks) * (cfg.reader.batchWindowMs / 1000)),
  );
  const records = recordsPerSecond * SECONDS_PER_MONTH;
  const scorerCalls = records / perBatch;
  const alerterCalls = (records / 1e6) * bench.alertInvocationsPerMillionRecords.value;
  const gbSeconds =
    (scorerCalls * bench.scorerMsPerBatch.value * cfg.scorer.memoryMb) / 1000 / 1024 +
    (alerterCalls * bench.alerterMsPerInvocation.value * cfg.alerter.memoryMb) / 1000 / 1024;
  const lambda =
    (scorerCalls + alerterCalls) * PRICES.lambdaPerRequest + gbSeconds * PRICES.lambdaArmGbSecond;

  const nodeHour = managed ? PRICES.elastiCacheNodeHour[managed.instance] : 0;
  if (nodeHour === undefined) {
    throw new Error(`no ElastiCache price for "${managed?.instance}" in infra/capacity.ts PRICES`);
  }
  const elastiCache = redisNodes * nodeHour * HOURS_PER_MONTH;

  const natGb = (records * bench.natBytesPerRecord.value) / 1e9;
  const nats = cfg.network.nat === "none" ? 0 : cfg.network.azs;
  const nat =
    cfg.network.nat === "managed"
      ? nats * PRICES.natGatewayHour * HOURS_PER_MONTH + natGb * PRICES.natGatewayPerGb
      : nats * PRICES.natInstanceHour * HOURS_PER_MONTH + natGb * PRICES.natInstancePerGb;

  const traces = (callsPerSecond: number) =>
    Math.min(callsPerSecond, XRAY_RESERVOIR_PER_S) +
    XRAY_RATE * Math.max(0, callsPerSecond - XRAY_RESERVOIR_PER_S);
  const xray = cfg.tracing
    ? (traces(scorerCalls / SECONDS_PER_MONTH) + traces(alerterCalls / SECONDS_PER_MONTH)) *
      SECONDS_PER_MONTH *
      PRICES.xrayPerTrace
    : 0;

  const limits: string[] = [];
  const reserved = scorerReservedConcurrency + cfg.alerter.reservedConcurrency;
  if (reserved > LAMBDA_CONCURRENCY_QUOTA - LAMBDA_UNRESERVED_MINIMUM) {
    limits.push(
      `Lambda concurrency quota ≥ ${(reserved + LAMBDA_UNRESERVED_MINIMUM).toLocaleString("en-US")} (default ${LAMBDA_CONCURRENCY_QUOTA.toLocaleString("en-US")})`,
    );
  }
  if (shards > 64)
    limits.push(`STREAM_SHARDS above its maximum of 64: larger batches or a second pipeline`);
  if (redisNodes > ELASTICACHE_NODES_PER_CLUSTER_QUOTA) {
    limits.push(
      `ElastiCache nodes per cluster ≥ ${redisNodes} (default ${ELASTICACHE_NODES_PER_CLUSTER_QUOTA})`,
    );
  }

  return {
    recordsPerSecond,
    perTask,
    perShardRecordsPerSecond: perShard,
    tasks,
    shards,
    redisNodes,
    scorerReservedConcurrency,
    monthlyUsd: {
      fargate,
      lambda,
      elastiCache,
      nat,
      xray,
      total: fargate + lambda + elastiCache + nat + xray,
    },
    limits,
  };
}

/** The rates docs/deploy.md plans for. */
export const PLANNED_RATES = [10_000, 100_000, 1_000_000] as const;

const int = (n: number) => Math.round(n).toLocaleString("en-US");
const usd = (n: number) => `$${int(n)}`;

/**
 * The generated part of docs/deploy.md's "Scaling" section: the inputs (placeholders marked)
 * and, for each planned rate, tasks, shards, nodes, reservation and monthly cost.
 */
export function renderScalingSection(
  cfg: StageConfig,
  bench: BenchmarkInputs = BENCHMARK,
  rates: readonly number[] = PLANNED_RATES,
): string {
  const inputs = Object.entries(bench) as Array<[keyof BenchmarkInputs, BenchmarkInput]>;
  const placeholders = inputs.filter(([, i]) => i.placeholder).length;
  const mark = placeholders > 0 ? " ⚠" : "";
  const plans = rates.map((r) => planCapacity(cfg, r, bench));
  const managed = cfg.redis.mode === "managed" ? cfg.redis : undefined;
  const perTask = perTaskThroughput(cfg, bench);
  const lines: string[] = [];
  if (placeholders > 0) {
    lines.push(
      `> ⚠ **${placeholders} of ${inputs.length} inputs are placeholders** (marked PLACEHOLDER below): ` +
        "every number marked ⚠ is arithmetic on them, not a measurement. Fill `BENCHMARK` in " +
        "`infra/capacity.ts` from `npm run bench`, then `UPDATE_DOCS=1 npx vitest run infra/capacity.test.ts`.",
      "",
    );
  }
  lines.push(
    "| input | value | from | status |",
    "| --- | --- | --- | --- |",
    ...inputs.map(
      ([name, i]) =>
        `| \`${name}\` | ${int(i.value)} ${i.unit} | ${i.from} | ${i.placeholder ? "**PLACEHOLDER**" : "measured"} |`,
    ),
    "",
    `Stage shape: \`${cfg.stage}\` — reader tasks of ${cfg.reader.cpu} / ${cfg.reader.memory}, ` +
      `\`MAX_IN_FLIGHT\` ${cfg.reader.maxInFlight}, \`BATCH_SIZE\` ${cfg.reader.batchSize}, ` +
      `rolling deploys at ${cfg.reader.deploymentMaxPercent}%; scorer ${cfg.scorer.memoryMb} MB, ` +
      `alerter ${cfg.alerter.memoryMb} MB; Redis ${managed ? `\`${managed.instance}\` with ${managed.replicasPerShard} replica(s) per shard` : "external (not priced)"}; ` +
      `NAT ${cfg.network.nat} × ${cfg.network.azs} AZ. Planned at ${Math.round(HEADROOM * 100)}% of measured throughput.`,
    "",
    `Per reader task: **${int(perTask.recordsPerSecond)} records/s**${mark} (bound: ${perTask.bound === "cpu" ? "the reader's CPU" : "in-flight batches × batch size per scorer round trip"}); ` +
      `per stream shard: **${int(bench.recordsPerSecondPerShard.value)} records/s**${bench.recordsPerSecondPerShard.placeholder ? " ⚠" : ""}.`,
    "",
    `| | ${rates.map((r) => `${int(r)} events/s`).join(" | ")} |`,
    `| --- | ${rates.map(() => "---:").join(" | ")} |`,
  );
  const row = (label: string, cell: (p: CapacityPlan) => string) =>
    lines.push(`| ${label} | ${plans.map((p) => `${cell(p)}${mark}`).join(" | ")} |`);
  row(`reader tasks (\`reader.maxTasks\` at least)`, (p) => int(p.tasks));
  row("stream shards = Redis primaries (`STREAM_SHARDS`)", (p) => int(p.shards));
  row("ElastiCache nodes", (p) => int(p.redisNodes));
  row("scorer reserved concurrency (peak in flight)", (p) => int(p.scorerReservedConcurrency));
  row("Fargate / month", (p) => usd(p.monthlyUsd.fargate));
  row("Lambda / month", (p) => usd(p.monthlyUsd.lambda));
  row("ElastiCache / month", (p) => usd(p.monthlyUsd.elastiCache));
  row("NAT / month", (p) => usd(p.monthlyUsd.nat));
  row("X-Ray / month", (p) => usd(p.monthlyUsd.xray));
  row("**total / month**", (p) => `**${usd(p.monthlyUsd.total)}**`);
  const limited = plans.filter((p) => p.limits.length > 0);
  lines.push(
    "",
    limited.length === 0
      ? "Limits to raise: none at these rates."
      : `Limits to raise${mark}: ${limited.map((p) => `at ${int(p.recordsPerSecond)} events/s, ${p.limits.join("; ")}`).join("; ")}.`,
  );
  return lines.join("\n");
}
