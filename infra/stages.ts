/**
 * Per-stage settings: every number that differs between `dev`, `staging`, `production` and any
 * other (personal) stage, as plain data plus pure functions. No SST import: the other `infra/`
 * files read the result of {@link resolveStage}, and `stages.test.ts` checks the table.
 *
 * The invariants that keep the pipeline from throttling itself or losing work on a deploy are
 * checked by {@link validateStage}; {@link resolveStage} throws on any violation, so a stage that
 * breaks them cannot be deployed (the error names the stage, the setting and the fix).
 */

export const BUILT_IN_STAGES = ["dev", "staging", "production"] as const;
export type BuiltInStage = (typeof BUILT_IN_STAGES)[number];

/** Lambda's limit for a synchronous (RequestResponse) invocation payload: 6 MB. */
export const LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024;
/**
 * A record travels to the scorer as a JSON string inside the JSON invoke payload
 * (`core/stream/contract.ts`): escaping can double it (every `"` becomes `\"`), and each entry
 * carries its id and delivery count.
 */
export const PAYLOAD_ESCAPE_FACTOR = 2;
export const PAYLOAD_ENTRY_OVERHEAD_BYTES = 128;
/** Fargate's ceiling for a container's stopTimeout (SIGTERM to SIGKILL). */
export const FARGATE_MAX_STOP_TIMEOUT_S = 120;
/** After its last invocation returns, a draining reader still acknowledges and flushes metrics. */
export const DRAIN_MARGIN_S = 10;
/** "Comfortably above": the scorer's timeout is at least this multiple of the reader's budget. */
export const SCORER_TIMEOUT_OVER_BUDGET = 2;
/** Alarms fire when a function gets this close to its timeout (p99) or its reservation. */
export const NEAR_LIMIT_PERCENT = 80;

/** The log retentions this project uses (a subset of SST's `logging.retention` values). */
export type LogRetention = "3 days" | "1 week" | "2 weeks" | "1 month" | "3 months" | "1 year";
export type FargateCpu = "0.25 vCPU" | "0.5 vCPU" | "1 vCPU" | "2 vCPU";
export type FargateMemory = `${number} GB`;

/** Fargate's valid task sizes for the CPUs above (SST throws on others only at deploy). */
export const FARGATE_MEMORY_BY_CPU: Record<FargateCpu, readonly FargateMemory[]> = {
  "0.25 vCPU": ["0.5 GB", "1 GB", "2 GB"],
  "0.5 vCPU": ["1 GB", "2 GB", "3 GB", "4 GB"],
  "1 vCPU": ["2 GB", "3 GB", "4 GB", "5 GB", "6 GB", "7 GB", "8 GB"],
  "2 vCPU": ["4 GB", "5 GB", "6 GB", "7 GB", "8 GB"],
};

export interface FunctionSettings {
  /** Reserved concurrency: both the function's guarantee and its ceiling. */
  reservedConcurrency: number;
  memoryMb: number;
  timeoutSeconds: number;
}

export interface StageConfig {
  stage: string;
  /** What `sst remove` does with stateful resources; production keeps them. */
  removal: "remove" | "retain";
  /** A protected stage refuses `sst remove`. */
  protect: boolean;
  logLevel: "debug" | "info" | "warn" | "error";
  /** CloudWatch Logs retention of the functions and the reader. */
  logRetention: LogRetention;
  /** reference §4 privacy; `hash` makes the `IpHashKey` secret mandatory. */
  ipMasking: "off" | "truncate" | "hash";
  network: {
    /** NAT for private subnets; required when a function runs in the VPC (managed Redis/InfluxDB). */
    nat: "none" | "ec2" | "managed";
    /** A bastion host to reach a managed Redis from a laptop (`sst tunnel`). */
    bastion: boolean;
  };
  /** `managed`: an ElastiCache node in the VPC; `external`: the `RedisUrl` secret. */
  redis: { mode: "managed"; instance: string } | { mode: "external" };
  influx: {
    /** External InfluxDB URL; deploy-time `WAF_INFLUXDB_URL` fills it. Ignored when `managed`. */
    url?: string;
    org: string;
    bucket: string;
    api: "v2" | "v1";
    /** An Amazon Timestream for InfluxDB instance in the VPC instead of an external one. */
    managed: false | { instanceType: string; storageGb: number; multiAz: boolean };
  };
  stream: {
    key: string;
    field: string;
    group: string;
    dlqKey: string;
    dlqMaxLen: number;
    alertListKey: string;
  };
  scorer: FunctionSettings;
  alerter: FunctionSettings & {
    /** Lambda's own retries of a failed asynchronous invocation (0–2). */
    maxRetryAttempts: number;
    /** How long Lambda keeps an undelivered alert before sending it to the failure queue. */
    maxEventAgeSeconds: number;
  };
  reader: {
    cpu: FargateCpu;
    memory: FargateMemory;
    minTasks: number;
    maxTasks: number;
    /** Target-tracking autoscaling on average CPU. */
    cpuTargetPercent: number;
    /** ECS rolling deploy: old tasks still drain while new ones run, up to this % of desired. */
    deploymentMaxPercent: number;
    /** Scorer invocations one task keeps in flight (`MAX_IN_FLIGHT`). */
    maxInFlight: number;
    batchSize: number;
    batchWindowMs: number;
    /** Larger records are invalid (`MAX_RECORD_BYTES`); bounds a batch's payload. */
    maxRecordBytes: number;
    maxRetries: number;
    /** XAUTOCLAIM idle time; must outlast any invocation still holding the entry. */
    claimIdleMs: number;
    /** The longest a healthy batch invocation should take (InfluxDB write with its retries + alert enqueue). */
    invokeBudgetMs: number;
    /** ECS stopTimeout: SIGTERM to SIGKILL, the time a task has to drain. */
    stopTimeoutSeconds: number;
    healthPort: number;
  };
  /** The alert function's notification settings (reference §4); a channel is on when its secret is set. */
  notifications: {
    /** `ALERT_THROTTLE_S`: one notification per (client IP, category) and window. */
    throttleSeconds: number;
    pagerDutyMinSeverity: number;
    slackMinSeverity: number;
    webhookMinSeverity: number;
    emailMinSeverity: number;
    /** SES sender; email is on when it and `emailTo` are set (`WAF_ALERT_EMAIL_FROM`). */
    emailFrom?: string;
    /** Comma-separated recipients (`WAF_ALERT_EMAIL_TO`). */
    emailTo?: string;
    /** One notification request's timeout. */
    timeoutMs: number;
    /** Bound on one invocation's deliveries per channel; below the alert function's timeout. */
    deadlineMs: number;
  };
  /** Opt-in threat intelligence (reference §3): read by the scorer, repeat offenders fed by the alerter. */
  threatIntel: {
    /** Redis sorted set of malicious IPs/CIDRs written by feeds (`REPUTATION_SET_KEY`). */
    reputationSetKey?: string;
    /** Critical events from one IP within the window that make it malicious; 0 = off. */
    repeatOffenderThreshold: number;
    repeatOffenderWindowSeconds: number;
    repeatOffenderTtlSeconds: number;
    /** How often the scorer reloads both into memory. */
    refreshSeconds: number;
  };
  alarms: {
    periodSeconds: number;
    evaluationPeriods: number;
    datapointsToAlarm: number;
    /** Function errors per period that raise the Errors alarm. */
    functionErrors: number;
    /** Consumer-group lag (entries not yet delivered) that raises the lag alarm. */
    consumerLag: number;
    /** Pending (delivered, unacknowledged) entries that raise the stuck-work alarm. */
    pendingEntries: number;
    /** New dead-letter entries within 5 minutes that raise the DLQ-growth alarm. */
    dlqGrowth: number;
    /** Optional email subscribed to the stage's alarm topic (`WAF_ALARM_EMAIL`). */
    email?: string;
  };
}

/** Settings every stage shares unless its entry says otherwise. */
const BASE: Omit<StageConfig, "stage"> = {
  removal: "remove",
  protect: false,
  logLevel: "info",
  logRetention: "1 week",
  ipMasking: "off",
  network: { nat: "ec2", bastion: true },
  redis: { mode: "managed", instance: "t4g.micro" },
  influx: { org: "waf-org", bucket: "waf-realtime", api: "v2", managed: false },
  stream: {
    key: "waf-realtime",
    field: "event",
    group: "realtime-processor",
    dlqKey: "waf-realtime:dlq",
    dlqMaxLen: 100_000,
    alertListKey: "waf-alerts",
  },
  scorer: { reservedConcurrency: 5, memoryMb: 512, timeoutSeconds: 30 },
  alerter: {
    reservedConcurrency: 2,
    memoryMb: 256,
    timeoutSeconds: 30,
    maxRetryAttempts: 2,
    maxEventAgeSeconds: 3600,
  },
  reader: {
    cpu: "0.25 vCPU",
    memory: "0.5 GB",
    minTasks: 1,
    maxTasks: 1,
    cpuTargetPercent: 70,
    deploymentMaxPercent: 200,
    maxInFlight: 2,
    batchSize: 25,
    batchWindowMs: 100,
    maxRecordBytes: 32 * 1024,
    maxRetries: 5,
    claimIdleMs: 60_000,
    invokeBudgetMs: 10_000,
    stopTimeoutSeconds: 45,
    healthPort: 8080,
  },
  notifications: {
    throttleSeconds: 300,
    pagerDutyMinSeverity: 90,
    slackMinSeverity: 80,
    webhookMinSeverity: 80,
    emailMinSeverity: 90,
    timeoutMs: 3000,
    deadlineMs: 10_000,
  },
  threatIntel: {
    repeatOffenderThreshold: 0,
    repeatOffenderWindowSeconds: 300,
    repeatOffenderTtlSeconds: 3600,
    refreshSeconds: 30,
  },
  alarms: {
    periodSeconds: 60,
    evaluationPeriods: 5,
    datapointsToAlarm: 3,
    functionErrors: 5,
    consumerLag: 50_000,
    pendingEntries: 500,
    dlqGrowth: 100,
  },
};

/** What a stage changes from {@link BASE}, one level deep; `redis` is replaced whole. */
export type StageOverrides = {
  [K in Exclude<keyof StageConfig, "stage" | "redis">]?: StageConfig[K] extends object
    ? Partial<StageConfig[K]>
    : StageConfig[K];
} & { redis?: StageConfig["redis"] };

/**
 * The table. `dev` and personal stages: one small task, cheap NAT, managed Redis.
 * `staging`: production's shape at a third of its size. `production`: retained and protected,
 * Redis and InfluxDB are the operators' own (replicated, persistent) services.
 */
export const STAGES: Record<BuiltInStage, StageOverrides> = {
  dev: {
    logLevel: "debug",
  },
  staging: {
    logRetention: "1 month",
    redis: { mode: "managed", instance: "t4g.small" },
    // peak in flight: 4 per task × 6 tasks (3 at 200% during a deploy) = 24
    scorer: { reservedConcurrency: 30, memoryMb: 1024, timeoutSeconds: 60 },
    alerter: { reservedConcurrency: 5 },
    reader: {
      cpu: "0.5 vCPU",
      memory: "1 GB",
      minTasks: 1,
      maxTasks: 3,
      maxInFlight: 4,
      batchSize: 50,
      batchWindowMs: 50,
      claimIdleMs: 120_000,
      invokeBudgetMs: 20_000,
      stopTimeoutSeconds: 90,
    },
    alarms: { functionErrors: 1, consumerLag: 10_000, pendingEntries: 5_000, dlqGrowth: 20 },
  },
  production: {
    removal: "retain",
    protect: true,
    logRetention: "3 months",
    network: { nat: "none", bastion: false },
    redis: { mode: "external" },
    // peak in flight: 4 per task × 12 tasks (8 at 150% during a deploy) = 48
    scorer: { reservedConcurrency: 64, memoryMb: 1024, timeoutSeconds: 60 },
    alerter: { reservedConcurrency: 20, memoryMb: 512 },
    reader: {
      cpu: "1 vCPU",
      memory: "2 GB",
      minTasks: 2,
      maxTasks: 8,
      cpuTargetPercent: 60,
      deploymentMaxPercent: 150,
      maxInFlight: 4,
      batchSize: 80,
      batchWindowMs: 50,
      claimIdleMs: 120_000,
      invokeBudgetMs: 20_000,
      stopTimeoutSeconds: 90,
    },
    alarms: { functionErrors: 1, consumerLag: 5_000, pendingEntries: 10_000, dlqGrowth: 10 },
  },
};

export function isBuiltInStage(stage: string): stage is BuiltInStage {
  return (BUILT_IN_STAGES as readonly string[]).includes(stage);
}

/** One-level-deep merge: a section in `overrides` replaces only the keys it names. */
export function mergeStage(
  stage: string,
  base: Omit<StageConfig, "stage">,
  ...layers: StageOverrides[]
): StageConfig {
  const out: Record<string, unknown> = { ...base, stage };
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const current = out[key];
      const mergeable =
        typeof value === "object" &&
        value !== null &&
        typeof current === "object" &&
        current !== null &&
        // a Redis mode switch replaces the whole section: its keys depend on the mode
        key !== "redis";
      out[key] = mergeable ? { ...current, ...value } : value;
    }
  }
  return out as unknown as StageConfig;
}

/** Most reader tasks that can hold scorer invocations at once: `maxTasks` during a rolling deploy. */
export function peakReaderTasks(cfg: StageConfig): number {
  return Math.ceil((cfg.reader.maxTasks * cfg.reader.deploymentMaxPercent) / 100);
}

/** Most scorer invocations the readers can have in flight at once. */
export function peakScorerInvocations(cfg: StageConfig): number {
  return cfg.reader.maxInFlight * peakReaderTasks(cfg);
}

/** Upper bound of one batch's invoke payload, from the batch size and the record limit. */
export function maxBatchPayloadBytes(cfg: StageConfig): number {
  const perEntry = cfg.reader.maxRecordBytes * PAYLOAD_ESCAPE_FACTOR + PAYLOAD_ENTRY_OVERHEAD_BYTES;
  return cfg.reader.batchSize * perEntry;
}

/** Seconds a task needs after SIGTERM: its last invocation can run the scorer's full timeout. */
export function drainSeconds(cfg: StageConfig): number {
  return cfg.scorer.timeoutSeconds + DRAIN_MARGIN_S;
}

/** Entries pending in normal operation: every in-flight batch is pending until acknowledged. */
export function peakPendingEntries(cfg: StageConfig): number {
  return peakScorerInvocations(cfg) * cfg.reader.batchSize;
}

/** Functions run in the VPC only when they must reach a service that lives there. */
export function functionsInVpc(cfg: StageConfig): boolean {
  return cfg.redis.mode === "managed" || cfg.influx.managed !== false;
}

/** Every broken invariant of `cfg`, as sentences; empty when the stage is deployable. */
export function validateStage(cfg: StageConfig): string[] {
  const problems: string[] = [];
  const { scorer, alerter, reader, alarms } = cfg;

  const positiveInts: Array<[string, number]> = [
    ["scorer.reservedConcurrency", scorer.reservedConcurrency],
    ["alerter.reservedConcurrency", alerter.reservedConcurrency],
    ["reader.minTasks", reader.minTasks],
    ["reader.maxTasks", reader.maxTasks],
    ["reader.maxInFlight", reader.maxInFlight],
    ["reader.batchSize", reader.batchSize],
    ["reader.maxRecordBytes", reader.maxRecordBytes],
    ["reader.maxRetries", reader.maxRetries],
    ["stream.dlqMaxLen", cfg.stream.dlqMaxLen],
    ["alarms.periodSeconds", alarms.periodSeconds],
    ["alarms.evaluationPeriods", alarms.evaluationPeriods],
    ["alarms.datapointsToAlarm", alarms.datapointsToAlarm],
  ];
  for (const [name, value] of positiveInts) {
    if (!Number.isInteger(value) || value < 1) {
      problems.push(`${name} must be a positive integer, got ${value}`);
    }
  }
  if (!Number.isInteger(reader.batchWindowMs) || reader.batchWindowMs < 0) {
    problems.push(`reader.batchWindowMs must be an integer ≥ 0, got ${reader.batchWindowMs}`);
  }

  for (const [name, fn] of [
    ["scorer", scorer],
    ["alerter", alerter],
  ] as const) {
    if (!Number.isInteger(fn.memoryMb) || fn.memoryMb < 128 || fn.memoryMb > 10_240) {
      problems.push(`${name}.memoryMb must be an integer in 128–10240, got ${fn.memoryMb}`);
    }
    if (!Number.isInteger(fn.timeoutSeconds) || fn.timeoutSeconds < 1 || fn.timeoutSeconds > 900) {
      problems.push(`${name}.timeoutSeconds must be an integer in 1–900, got ${fn.timeoutSeconds}`);
    }
  }

  // The reader must never have more invocations in flight than the scorer may run: the excess
  // would be throttled (429), retried, and counted as failures against innocent records.
  const peak = peakScorerInvocations(cfg);
  if (peak > scorer.reservedConcurrency) {
    problems.push(
      `reader.maxInFlight (${reader.maxInFlight}) × peak reader tasks (${peakReaderTasks(cfg)}: ` +
        `maxTasks ${reader.maxTasks} at deploymentMaxPercent ${reader.deploymentMaxPercent}%) = ${peak} ` +
        `scorer invocations in flight, above scorer.reservedConcurrency (${scorer.reservedConcurrency}): ` +
        `the scorer would be throttled. Raise scorer.reservedConcurrency to at least ${peak}, ` +
        `or lower reader.maxInFlight, reader.maxTasks or reader.deploymentMaxPercent.`,
    );
  }

  const payload = maxBatchPayloadBytes(cfg);
  if (payload >= LAMBDA_SYNC_PAYLOAD_BYTES) {
    problems.push(
      `reader.batchSize (${reader.batchSize}) × (reader.maxRecordBytes ${reader.maxRecordBytes} × ` +
        `${PAYLOAD_ESCAPE_FACTOR} + ${PAYLOAD_ENTRY_OVERHEAD_BYTES}) = ${payload} bytes, not below ` +
        `Lambda's ${LAMBDA_SYNC_PAYLOAD_BYTES}-byte synchronous payload limit: lower one of them.`,
    );
  }

  if (scorer.timeoutSeconds * 1000 < SCORER_TIMEOUT_OVER_BUDGET * reader.invokeBudgetMs) {
    problems.push(
      `scorer.timeoutSeconds (${scorer.timeoutSeconds}) must be at least ${SCORER_TIMEOUT_OVER_BUDGET}× ` +
        `reader.invokeBudgetMs (${reader.invokeBudgetMs} ms), so a slow but healthy batch is never ` +
        `killed mid-write.`,
    );
  }

  if (reader.stopTimeoutSeconds <= drainSeconds(cfg)) {
    problems.push(
      `reader.stopTimeoutSeconds (${reader.stopTimeoutSeconds}) does not exceed the drain time ` +
        `(${drainSeconds(cfg)} s = scorer.timeoutSeconds ${scorer.timeoutSeconds} + ${DRAIN_MARGIN_S}): ` +
        `SIGKILL would cut in-flight batches short on every deploy and scale-in.`,
    );
  }
  if (reader.stopTimeoutSeconds > FARGATE_MAX_STOP_TIMEOUT_S) {
    problems.push(
      `reader.stopTimeoutSeconds (${reader.stopTimeoutSeconds}) exceeds Fargate's maximum of ` +
        `${FARGATE_MAX_STOP_TIMEOUT_S} s: lower scorer.timeoutSeconds so the drain fits.`,
    );
  }

  if (reader.claimIdleMs < 2 * scorer.timeoutSeconds * 1000) {
    problems.push(
      `reader.claimIdleMs (${reader.claimIdleMs}) must be at least twice scorer.timeoutSeconds ` +
        `(${2 * scorer.timeoutSeconds * 1000} ms): otherwise a reader claims entries another one is ` +
        `still scoring, doubling work and in-flight invocations.`,
    );
  }

  if (cfg.influx.managed && cfg.influx.api !== "v2") {
    problems.push(`influx.api must be "v2" with a managed (Timestream for InfluxDB) instance`);
  }
  if (cfg.redis.mode === "managed" && !cfg.redis.instance) {
    problems.push(`redis.instance must name an ElastiCache node type (e.g. "t4g.micro")`);
  }

  if (reader.minTasks > reader.maxTasks) {
    problems.push(
      `reader.minTasks (${reader.minTasks}) exceeds reader.maxTasks (${reader.maxTasks})`,
    );
  }
  if (
    !Number.isInteger(reader.deploymentMaxPercent) ||
    reader.deploymentMaxPercent < 100 ||
    reader.deploymentMaxPercent > 200
  ) {
    problems.push(
      `reader.deploymentMaxPercent must be an integer in 100–200, got ${reader.deploymentMaxPercent}`,
    );
  } else if (Math.floor((reader.minTasks * reader.deploymentMaxPercent) / 100) <= reader.minTasks) {
    // ECS keeps 100% healthy during a deploy, so it needs room for at least one extra task.
    problems.push(
      `reader.deploymentMaxPercent (${reader.deploymentMaxPercent}%) of reader.minTasks ` +
        `(${reader.minTasks}) leaves no room to start a new task: deployments would stall.`,
    );
  }
  if (reader.cpuTargetPercent < 10 || reader.cpuTargetPercent > 90) {
    problems.push(`reader.cpuTargetPercent must be in 10–90, got ${reader.cpuTargetPercent}`);
  }
  if (!(FARGATE_MEMORY_BY_CPU[reader.cpu] ?? []).includes(reader.memory)) {
    problems.push(
      `reader.memory ${reader.memory} is not a Fargate size for ${reader.cpu} ` +
        `(${(FARGATE_MEMORY_BY_CPU[reader.cpu] ?? []).join(", ")})`,
    );
  }
  if (!Number.isInteger(reader.healthPort) || reader.healthPort < 1 || reader.healthPort > 65_535) {
    problems.push(`reader.healthPort must be a TCP port, got ${reader.healthPort}`);
  }

  if (
    !Number.isInteger(alerter.maxRetryAttempts) ||
    alerter.maxRetryAttempts < 0 ||
    alerter.maxRetryAttempts > 2
  ) {
    problems.push(`alerter.maxRetryAttempts must be 0, 1 or 2, got ${alerter.maxRetryAttempts}`);
  }
  if (alerter.maxEventAgeSeconds < 60 || alerter.maxEventAgeSeconds > 21_600) {
    problems.push(
      `alerter.maxEventAgeSeconds must be in 60–21600, got ${alerter.maxEventAgeSeconds}`,
    );
  }

  if (functionsInVpc(cfg) && cfg.network.nat === "none") {
    problems.push(
      `network.nat is "none" but the functions run in the VPC (managed Redis or InfluxDB): ` +
        `they could not reach InfluxDB, Slack or PagerDuty. Use nat "ec2" or "managed".`,
    );
  }

  const normalPending = peakPendingEntries(cfg);
  if (alarms.pendingEntries <= normalPending) {
    problems.push(
      `alarms.pendingEntries (${alarms.pendingEntries}) must exceed the entries pending in normal ` +
        `operation (${normalPending} = ${peak} invocations × batchSize ${reader.batchSize}), or it would ` +
        `alarm on every busy minute.`,
    );
  }
  if (alarms.datapointsToAlarm > alarms.evaluationPeriods) {
    problems.push(
      `alarms.datapointsToAlarm (${alarms.datapointsToAlarm}) exceeds alarms.evaluationPeriods ` +
        `(${alarms.evaluationPeriods})`,
    );
  }
  for (const [name, value] of [
    ["alarms.functionErrors", alarms.functionErrors],
    ["alarms.consumerLag", alarms.consumerLag],
    ["alarms.dlqGrowth", alarms.dlqGrowth],
  ] as const) {
    if (!(value > 0)) problems.push(`${name} must be above 0, got ${value}`);
  }

  const n = cfg.notifications;
  if (n.deadlineMs < n.timeoutMs) {
    problems.push(
      `notifications.deadlineMs (${n.deadlineMs}) must be at least notifications.timeoutMs (${n.timeoutMs})`,
    );
  }
  if (n.deadlineMs >= alerter.timeoutSeconds * 1000) {
    problems.push(
      `notifications.deadlineMs (${n.deadlineMs}) must stay below the alert function's timeout ` +
        `(${alerter.timeoutSeconds} s), or a slow channel would time the whole invocation out.`,
    );
  }
  if (Boolean(n.emailFrom) !== Boolean(n.emailTo)) {
    problems.push("notifications.emailFrom and notifications.emailTo must be set together");
  }

  return problems;
}

export class StageConfigError extends Error {
  override name = "StageConfigError";
  constructor(
    readonly stage: string,
    readonly problems: string[],
  ) {
    super(`stage "${stage}" is not deployable:\n  - ${problems.join("\n  - ")}`);
  }
}

/**
 * The settings of `stage`: the table's entry for a built-in stage, the `dev` entry for any
 * other name (personal stages), then `overrides` on top. Throws {@link StageConfigError} when an
 * invariant is broken.
 *
 * @example
 * resolveStage("production").scorer.reservedConcurrency; // 64
 * resolveStage("alice").reader.maxTasks; // 1, like dev
 */
export function resolveStage(stage: string, ...overrides: StageOverrides[]): StageConfig {
  const entry = isBuiltInStage(stage) ? STAGES[stage] : STAGES.dev;
  const cfg = mergeStage(stage, BASE, entry, ...overrides);
  const problems = validateStage(cfg);
  if (problems.length > 0) throw new StageConfigError(stage, problems);
  return cfg;
}

/**
 * Deploy-time facts that are not tuning and do not belong in Git: where the external InfluxDB
 * is, who gets alarm email. Prefixed `WAF_` so a shell set up for `npm start` (`INFLUXDB_URL`
 * pointing at localhost) cannot leak into a deploy.
 */
export function overridesFromEnv(env: Record<string, string | undefined>): StageOverrides {
  const influx: Partial<StageConfig["influx"]> = {};
  if (env.WAF_INFLUXDB_URL) influx.url = env.WAF_INFLUXDB_URL;
  if (env.WAF_INFLUXDB_ORG) influx.org = env.WAF_INFLUXDB_ORG;
  if (env.WAF_INFLUXDB_BUCKET) influx.bucket = env.WAF_INFLUXDB_BUCKET;
  if (env.WAF_INFLUXDB_API) {
    if (env.WAF_INFLUXDB_API !== "v1" && env.WAF_INFLUXDB_API !== "v2") {
      throw new StageConfigError("(env)", [
        `WAF_INFLUXDB_API must be "v1" or "v2", got "${env.WAF_INFLUXDB_API}"`,
      ]);
    }
    influx.api = env.WAF_INFLUXDB_API;
  }
  const out: StageOverrides = {};
  if (Object.keys(influx).length > 0) out.influx = influx;
  if (env.WAF_ALARM_EMAIL) out.alarms = { email: env.WAF_ALARM_EMAIL };
  if (env.WAF_ALERT_EMAIL_FROM || env.WAF_ALERT_EMAIL_TO) {
    out.notifications = { emailFrom: env.WAF_ALERT_EMAIL_FROM, emailTo: env.WAF_ALERT_EMAIL_TO };
  }
  if (env.WAF_REPUTATION_SET_KEY)
    out.threatIntel = { reputationSetKey: env.WAF_REPUTATION_SET_KEY };
  return out;
}

/** The external InfluxDB URL, or a message saying how to provide one. */
export function requireInfluxUrl(cfg: StageConfig): string {
  if (cfg.influx.url) return cfg.influx.url;
  throw new StageConfigError(cfg.stage, [
    `no InfluxDB URL: deploy with WAF_INFLUXDB_URL=https://… (e.g. ` +
      `WAF_INFLUXDB_URL=https://influx.example.com:8086 npx sst deploy --stage ${cfg.stage}), ` +
      `or set influx.managed for this stage in infra/stages.ts`,
  ]);
}

/** `sst.config.ts` `app()` settings: production is retained and protected, the rest removable. */
export function appSettings(stage: string): { removal: "remove" | "retain"; protect: boolean } {
  const entry = isBuiltInStage(stage) ? STAGES[stage] : STAGES.dev;
  return {
    removal: entry.removal ?? BASE.removal,
    protect: entry.protect ?? BASE.protect,
  };
}
