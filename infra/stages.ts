/**
 * Per-stage settings: every number that differs between `dev`, `staging`, `production` and any
 * other (personal) stage, as plain data plus pure functions. No SST import: the other `infra/`
 * files read the result of {@link resolveStage}, and `stages.test.ts` checks the table.
 *
 * The invariants that keep the pipeline from throttling itself or losing work on a deploy are
 * checked by {@link validateStage}; {@link resolveStage} throws on any violation, so a stage that
 * breaks them cannot be deployed (the error names the stage, the setting and the fix).
 */

/**
 * The reader's request limits (core/stream/contract.ts; infra imports nothing from core, so they
 * are repeated here and `stages.test.ts` checks they are the same): a batch is cut when its body
 * would pass MAX_REQUEST_BYTES; a record byte takes at most MAX_ESCAPE_FACTOR bytes in it.
 */
export const MAX_REQUEST_BYTES = 5_500_000;
export const MAX_ESCAPE_FACTOR = 6;
export const RECORD_OVERHEAD_BYTES = 160;
export const REQUEST_OVERHEAD_BYTES = 14;

export const BUILT_IN_STAGES = ["dev", "staging", "production"] as const;
export type BuiltInStage = (typeof BUILT_IN_STAGES)[number];

/** Lambda's limit for a synchronous (RequestResponse) invocation payload: 6 MB. */
export const LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** Fargate's ceiling for a container's stopTimeout (SIGTERM to SIGKILL). */
export const FARGATE_MAX_STOP_TIMEOUT_S = 120;
/** After its last invocation returns, a draining reader still acknowledges and flushes metrics. */
export const DRAIN_MARGIN_S = 10;
/** "Comfortably above": the scorer's timeout is at least this multiple of the reader's budget. */
export const SCORER_TIMEOUT_OVER_BUDGET = 2;
/** Alarms fire when a function gets this close to its timeout (p99) or its reservation. */
export const NEAR_LIMIT_PERCENT = 80;
/** Account default of Elastic IPs per region; every NAT (gateway or fck-nat instance) takes one. */
export const DEFAULT_EIP_QUOTA = 5;
/** `STREAM_SHARDS` accepts 1–64 (core/config.ts). */
export const MAX_STREAM_SHARDS = 64;
/** ElastiCache: at most 5 replicas per shard, snapshots kept at most 35 days. */
export const MAX_REPLICAS_PER_SHARD = 5;
export const MAX_SNAPSHOT_RETENTION_DAYS = 35;
/** Scale-in waits at least this long between steps: a drained task's lag reappears slowly. */
export const MIN_SCALE_IN_COOLDOWN_S = 300;
/** The channels the alert function notifies, as they name their metrics (`NotificationsFailed_<channel>`). */
export const NOTIFICATION_CHANNELS = ["slack", "pagerduty", "webhook", "email"] as const;

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
  /**
   * X-Ray active tracing of the functions. Lambda samples the first invocation each second and
   * 5% of the rest: at high rates that costs about a third of Lambda itself (infra/capacity.ts).
   */
  tracing: boolean;
  network: {
    /**
     * Availability zones of the stage's VPC. Each AZ gets its own NAT, and each NAT one Elastic
     * IP (default quota: 5 per region): non-production stages use one AZ, production two.
     */
    azs: 1 | 2 | 3;
    /** NAT for private subnets; required when a function runs in the VPC (managed Redis/InfluxDB). */
    nat: "none" | "ec2" | "managed";
    /** A bastion host to reach a managed Redis from a laptop (`sst tunnel`). */
    bastion: boolean;
    /**
     * IPv4 CIDRs of the WAF hosts' shippers, reaching a managed Redis over peering, Transit
     * Gateway or VPN: the VPC's security group admits them on 6379 (`WAF_PRODUCER_CIDRS`).
     */
    producerCidrs: string[];
  };
  /** `managed`: ElastiCache in the VPC; `external`: the `RedisUrl` secret. */
  redis: RedisSettings;
  influx: {
    /** External InfluxDB URL; deploy-time `WAF_INFLUXDB_URL` fills it. Ignored when `managed`. */
    url?: string;
    org: string;
    bucket: string;
    api: "v2" | "v1";
    /** An Amazon Timestream for InfluxDB instance in the VPC instead of an external one. */
    managed: false | { instanceType: string; storageGb: number; multiAz: boolean };
    /**
     * `INFLUX_IP_AS`: `tag` keeps one series per client address (fine on InfluxDB 3.x); `field`
     * stores it as a field beside a bounded `client_net` tag, so on 1.x/2.x (TSM) an attacker
     * cannot grow the series count until points are refused (docs/deploy.md).
     */
    ipAs: "tag" | "field";
  };
  stream: {
    key: string;
    field: string;
    group: string;
    dlqKey: string;
    dlqMaxLen: number;
    alertListKey: string;
    /** `STREAM_SHARDS`: keys the logical stream is spread over (reader, scorer and alerter alike). */
    shards: number;
  };
  /** What the scorer grades by (reference §3, docs/detection.md). */
  scoring: {
    /** `SCORING_PROFILE`. */
    profile: "seed" | "crs";
    /** `SCORING_WEIGHTS` (three-digit CRS prefix → points); unset keeps the application's table. */
    weights?: Record<string, number>;
    /** `CAMPAIGN_WINDOW_S`. */
    campaignWindowSeconds: number;
    /** `CAMPAIGN_MIN_EVENTS`; 0 turns campaign alerts off. */
    campaignMinEvents: number;
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
    /** Step scaling on the backlog: `ConsumerLag` per running task (`readerScaling` in scaling.ts). */
    scaling: {
      /** Lag per task from which a task is added (more, in proportion, far above it). */
      scaleOutLagPerTask: number;
      /** Lag per task below which one task is removed… */
      scaleInLagPerTask: number;
      /** …once it stayed there this many consecutive minutes. */
      scaleInAfterMinutes: number;
      /** Seconds between two scale-in steps (≥ 300). */
      scaleInCooldownSeconds: number;
      /** Seconds between two scale-out steps. */
      scaleOutCooldownSeconds: number;
    };
    /** `sst deploy` waits for the service to be stable: a crash-looping reader fails the deploy. */
    waitForDeploy: boolean;
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
    /** `ALERT_CHANNEL_RATE_PER_MIN`: notifications a channel sends a minute at most; 0 = no cap. */
    channelRatePerMinute: number;
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
    /** Records dead-lettered (the reader's `DeadLettered` counter) within 5 minutes that alarm. */
    deadLettered: number;
    /** Records the scorer failed (retried later: `EventsFailed`) per period, 3 of 5, that alarm. */
    eventsFailed: number;
    /** Failed notifications of one channel (`NotificationsFailed_<channel>`) per period, 3 of 5. */
    notificationsFailed: number;
    /** Age of the oldest alert waiting in Lambda's async queue (`AsyncEventAge`) that alarms. */
    alertEventAgeSeconds: number;
    /** ElastiCache `DatabaseMemoryUsagePercentage`: with noeviction a full Redis refuses XADD. */
    redisMemoryPercent: number;
    /** ElastiCache `EngineCPUUtilization` (the single Redis thread). */
    redisEngineCpuPercent: number;
    /** ElastiCache `CPUCreditBalance` floor (t-class nodes only): below it the node is throttled soon. */
    redisCpuCredits: number;
    /** Optional email subscribed to the stage's alarm topic (`WAF_ALARM_EMAIL`). */
    email?: string;
    /** PagerDuty's CloudWatch integration URL, subscribed over HTTPS (`WAF_ALARM_PAGERDUTY_URL`). */
    pagerDutyUrl?: string;
    /** AWS Chatbot → Slack (`WAF_ALARM_SLACK_TEAM_ID`, `WAF_ALARM_SLACK_CHANNEL_ID`). */
    slack?: { teamId: string; channelId: string };
  };
}

/** Where the stage's Redis is, and how it is built when it is ours. */
export type RedisSettings =
  | {
      mode: "managed";
      /** ElastiCache node type without `cache.` (e.g. `t4g.micro`, `m7g.large`). */
      instance: string;
      /**
       * `false`: one primary, cluster mode off. `{ shards }`: ElastiCache cluster mode with that
       * many primaries (`REDIS_MODE=cluster` is then set for every runtime); the configuration
       * endpoint is the `REDIS_URL` entry point.
       */
      cluster: false | { shards: number };
      /** Replicas per shard (0–5). Above 0: Multi-AZ with automatic failover (needs 2 AZs). */
      replicasPerShard: number;
      /** Daily snapshots kept (0 = none, at most 35). */
      snapshotRetentionDays: number;
    }
  | {
      mode: "external";
      /** `REDIS_MODE` for the operators' Redis; unset: detected at start (`INFO cluster`). */
      topology?: "single" | "cluster";
    };

/** Settings every stage shares unless its entry says otherwise. */
const BASE: Omit<StageConfig, "stage"> = {
  removal: "remove",
  protect: false,
  logLevel: "info",
  logRetention: "1 week",
  ipMasking: "off",
  tracing: true,
  // one AZ, one fck-nat instance: one Elastic IP per non-production stage (see DEFAULT_EIP_QUOTA)
  network: { azs: 1, nat: "ec2", bastion: true, producerCidrs: [] },
  redis: {
    mode: "managed",
    instance: "t4g.micro",
    cluster: false,
    replicasPerShard: 0,
    snapshotRetentionDays: 0,
  },
  influx: { org: "waf-org", bucket: "waf-realtime", api: "v2", managed: false, ipAs: "tag" },
  stream: {
    key: "waf-realtime",
    field: "event",
    group: "realtime-processor",
    dlqKey: "waf-realtime:dlq",
    dlqMaxLen: 100_000,
    alertListKey: "waf-alerts",
    shards: 1,
  },
  scoring: { profile: "seed", campaignWindowSeconds: 300, campaignMinEvents: 20 },
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
    scaling: {
      scaleOutLagPerTask: 1_000,
      scaleInLagPerTask: 100,
      scaleInAfterMinutes: 10,
      scaleInCooldownSeconds: 300,
      scaleOutCooldownSeconds: 60,
    },
    waitForDeploy: false,
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
    channelRatePerMinute: 60,
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
    deadLettered: 100,
    eventsFailed: 10,
    notificationsFailed: 5,
    alertEventAgeSeconds: 900,
    redisMemoryPercent: 80,
    redisEngineCpuPercent: 90,
    redisCpuCredits: 30,
  },
};

/** What a stage changes from {@link BASE}, one level deep; `redis` is replaced whole. */
export type StageOverrides = {
  [K in Exclude<keyof StageConfig, "stage" | "redis">]?: StageConfig[K] extends object
    ? Partial<StageConfig[K]>
    : StageConfig[K];
} & { redis?: StageConfig["redis"] };

/**
 * The table. `dev` and personal stages: one small task, one AZ with a cheap NAT, one Redis node.
 * `staging`: production's shape (cluster mode, two stream shards, backlog scaling, `crs`) at a
 * third of its size, without replicas. `production`: retained and protected; Redis in cluster
 * mode with a replica per shard and daily snapshots, two AZs with managed NAT.
 */
/** The reader settings staging and production share: long claims and budgets, 4 in flight. */
const DEPLOYED_READER = {
  waitForDeploy: true,
  maxInFlight: 4,
  batchWindowMs: 50,
  claimIdleMs: 120_000,
  invokeBudgetMs: 20_000,
  stopTimeoutSeconds: 90,
} as const;

/** Alarms staging and production share: any function error or failed event pages. */
const DEPLOYED_ALARMS = { functionErrors: 1, eventsFailed: 1, notificationsFailed: 1 } as const;

export const STAGES: Record<BuiltInStage, StageOverrides> = {
  dev: {
    logLevel: "debug",
  },
  staging: {
    logRetention: "1 month",
    redis: {
      mode: "managed",
      instance: "t4g.small",
      cluster: { shards: 2 },
      replicasPerShard: 0,
      snapshotRetentionDays: 1,
    },
    stream: { shards: 2 },
    // records come from real ModSecurity/Coraza through `waf ship` (docs/detection.md)
    scoring: { profile: "crs" },
    // peak in flight: 4 per task × 6 tasks (3 at 200% during a deploy) = 24
    scorer: { reservedConcurrency: 30, memoryMb: 1024, timeoutSeconds: 60 },
    alerter: { reservedConcurrency: 5 },
    reader: {
      cpu: "0.5 vCPU",
      memory: "1 GB",
      minTasks: 1,
      maxTasks: 3,
      ...DEPLOYED_READER,
      // batches are cut by bytes (MAX_REQUEST_BYTES): 500 typical records are ~1 MB
      batchSize: 500,
    },
    alarms: {
      ...DEPLOYED_ALARMS,
      consumerLag: 10_000,
      // normal: 24 invocations in flight × 500
      pendingEntries: 25_000,
      deadLettered: 20,
      alertEventAgeSeconds: 600,
    },
  },
  production: {
    removal: "retain",
    protect: true,
    logRetention: "3 months",
    // managed NAT gateways, one per AZ: the functions join the VPC to reach Redis
    network: { azs: 2, nat: "managed", bastion: false, producerCidrs: [] },
    redis: {
      mode: "managed",
      instance: "m7g.large",
      cluster: { shards: 2 },
      replicasPerShard: 1,
      snapshotRetentionDays: 7,
    },
    // on InfluxDB 3.x, `tag` is fine: deploy with WAF_INFLUX_IP_AS=tag
    influx: { ipAs: "field" },
    stream: { shards: 2 },
    scoring: { profile: "crs" },
    // peak in flight: 4 per task × 12 tasks (8 at 150% during a deploy) = 48
    scorer: { reservedConcurrency: 64, memoryMb: 1024, timeoutSeconds: 60 },
    alerter: { reservedConcurrency: 20, memoryMb: 512 },
    reader: {
      cpu: "1 vCPU",
      memory: "2 GB",
      minTasks: 2,
      maxTasks: 8,
      // one task drains ~10k records/s (docs/benchmarks.md): lag per task in records
      scaling: {
        scaleOutLagPerTask: 10_000,
        scaleInLagPerTask: 1_000,
        scaleInAfterMinutes: 15,
        scaleInCooldownSeconds: 600,
        scaleOutCooldownSeconds: 60,
      },
      ...DEPLOYED_READER,
      deploymentMaxPercent: 150,
      // measured (docs/benchmarks.md): CPU per record about halves from batch 80 to 1000;
      // batches are cut by bytes (MAX_REQUEST_BYTES), so 1000 typical records (~2 MB) travel
      // together while one huge record still goes alone
      batchSize: 1000,
    },
    alarms: {
      ...DEPLOYED_ALARMS,
      // above 8 tasks × scaleOutLagPerTask: the alarm fires once scaling out is exhausted
      consumerLag: 100_000,
      // normal: 48 invocations in flight × 1000
      pendingEntries: 100_000,
      deadLettered: 10,
      alertEventAgeSeconds: 300,
      redisMemoryPercent: 70,
      redisEngineCpuPercent: 80,
    },
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

/**
 * The largest invoke payload one record can need: its bytes, every one escaped at worst
 * (core/stream/contract.ts), and its entry's fields. The reader cuts batches by bytes
 * (`MAX_REQUEST_BYTES`), so this bounds a batch of one — the only batch that can pass the cut.
 */
export function maxRecordPayloadBytes(cfg: StageConfig): number {
  return (
    REQUEST_OVERHEAD_BYTES + cfg.reader.maxRecordBytes * MAX_ESCAPE_FACTOR + RECORD_OVERHEAD_BYTES
  );
}

/**
 * The reader's V8 old-generation limit in MiB: `--max-old-space-size` in the Dockerfile (target
 * reader) and local/stack.ts. Any explicit limit keeps its RSS near 140 MB under a backlog
 * (docs/benchmarks.md); this one leaves room for the worst case below.
 */
export const READER_HEAP_MB = 768;
/** What a reader holds besides its batches (code, clients, buffers). */
export const READER_BASE_HEAP_BYTES = 64 * 2 ** 20;

/**
 * The most heap a reader of `cfg` can need: core/stream/contract.ts `readerWorstHeapBytes`,
 * repeated here because infra imports nothing from core (stages.test.ts checks the two agree
 * on every stage).
 */
export function readerWorstHeapBytes(cfg: StageConfig): number {
  const reads = cfg.reader.maxInFlight + cfg.stream.shards;
  const perRead = cfg.reader.batchSize * cfg.reader.maxRecordBytes * 2 + 2 * MAX_REQUEST_BYTES;
  return reads * perRead + READER_BASE_HEAP_BYTES;
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

/**
 * The most reader tasks (`maxTasks`) the scorer's reservation allows: their peak during a rolling
 * deploy, times `maxInFlight`, must fit `scorer.reservedConcurrency` (the autoscaling cap).
 */
export function maxReaderTasksAllowed(cfg: StageConfig): number {
  const peakTasks = Math.floor(cfg.scorer.reservedConcurrency / cfg.reader.maxInFlight);
  return Math.floor((peakTasks * 100) / cfg.reader.deploymentMaxPercent);
}

/** Primaries of a managed Redis (1 with cluster mode off); 0 for an external one. */
export function redisPrimaries(cfg: StageConfig): number {
  if (cfg.redis.mode !== "managed") return 0;
  return cfg.redis.cluster === false ? 1 : cfg.redis.cluster.shards;
}

/** ElastiCache nodes of a managed Redis: primaries and their replicas; 0 for an external one. */
export function redisNodeCount(cfg: StageConfig): number {
  if (cfg.redis.mode !== "managed") return 0;
  return redisPrimaries(cfg) * (1 + cfg.redis.replicasPerShard);
}

/**
 * `REDIS_MODE` for every runtime: `cluster` for a managed cluster (no probe needed at start),
 * an external stage's declared topology, else undefined (detected at start-up).
 */
export function redisModeOf(cfg: StageConfig): "single" | "cluster" | undefined {
  if (cfg.redis.mode === "managed") return cfg.redis.cluster === false ? undefined : "cluster";
  return cfg.redis.topology;
}

/** Elastic IPs the stage's NATs take: one per AZ (gateway or fck-nat instance), none without NAT. */
export function elasticIps(cfg: StageConfig): number {
  return cfg.network.nat === "none" ? 0 : cfg.network.azs;
}

const IPV4_CIDR =
  /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\/(?:3[0-2]|[12]?\d)$/;

const isInt = (v: number, min: number, max: number) => Number.isInteger(v) && v >= min && v <= max;

/** The backlog autoscaling: it must react before the lag alarm pages and must not flap. */
function scalingProblems(cfg: StageConfig): string[] {
  const problems: string[] = [];
  const { reader, alarms } = cfg;
  const s = reader.scaling;
  if (!isInt(s.scaleInLagPerTask, 0, Number.MAX_SAFE_INTEGER)) {
    problems.push(
      `reader.scaling.scaleInLagPerTask must be an integer ≥ 0, got ${s.scaleInLagPerTask}`,
    );
  } else if (s.scaleInLagPerTask >= s.scaleOutLagPerTask) {
    problems.push(
      `reader.scaling.scaleInLagPerTask (${s.scaleInLagPerTask}) must stay below ` +
        `reader.scaling.scaleOutLagPerTask (${s.scaleOutLagPerTask}), or the service would add and ` +
        `remove tasks in turn: lower scaleInLagPerTask (a tenth of scaleOutLagPerTask is usual).`,
    );
  }
  if (!isInt(s.scaleInCooldownSeconds, MIN_SCALE_IN_COOLDOWN_S, 3600)) {
    problems.push(
      `reader.scaling.scaleInCooldownSeconds must be an integer in ${MIN_SCALE_IN_COOLDOWN_S}–3600, ` +
        `got ${s.scaleInCooldownSeconds}: a removed task's share of the backlog shows up only ` +
        `minutes later, so faster scale-in removes tasks that are still needed.`,
    );
  }
  if (!isInt(s.scaleOutCooldownSeconds, 0, 3600)) {
    problems.push(
      `reader.scaling.scaleOutCooldownSeconds must be an integer in 0–3600, got ${s.scaleOutCooldownSeconds}`,
    );
  }
  // At k tasks the service adds one only above k × scaleOutLagPerTask: an alarm below
  // maxTasks × that would page while autoscaling is still allowed (and about) to catch up.
  const scaleOutCeiling = reader.maxTasks * s.scaleOutLagPerTask;
  if (alarms.consumerLag <= scaleOutCeiling) {
    problems.push(
      `alarms.consumerLag (${alarms.consumerLag}) must exceed reader.maxTasks (${reader.maxTasks}) × ` +
        `reader.scaling.scaleOutLagPerTask (${s.scaleOutLagPerTask}) = ${scaleOutCeiling}, the lag at ` +
        `which the largest fleet still scales out: raise alarms.consumerLag above ${scaleOutCeiling} ` +
        `or lower scaleOutLagPerTask.`,
    );
  }
  return problems;
}

/** A managed Redis that can hold the streams, survive a node, and use every primary. */
function redisProblems(cfg: StageConfig): string[] {
  const problems: string[] = [];
  const { redis, stream, network } = cfg;
  if (!isInt(stream.shards, 1, MAX_STREAM_SHARDS)) {
    problems.push(
      `stream.shards must be an integer in 1–${MAX_STREAM_SHARDS}, got ${stream.shards}`,
    );
  }
  if (!isInt(network.azs, 1, 3)) {
    problems.push(`network.azs must be 1, 2 or 3, got ${network.azs}`);
  }
  for (const cidr of network.producerCidrs) {
    if (!IPV4_CIDR.test(cidr)) {
      problems.push(
        `network.producerCidrs must be IPv4 CIDRs like 203.0.113.0/24 (WAF_PRODUCER_CIDRS), got "${cidr}"`,
      );
    } else if (redis.mode !== "managed") {
      problems.push(
        `network.producerCidrs (${cidr}) only opens a managed Redis; this stage's Redis is external`,
      );
    }
  }
  if (cfg.influx.managed !== false && cfg.influx.managed.multiAz && network.azs < 2) {
    problems.push(
      `influx.managed.multiAz needs a standby in a second AZ, but network.azs is ${network.azs}: ` +
        `set network.azs to 2 or multiAz to false.`,
    );
  }
  if (redis.mode !== "managed") return problems;

  if (!redis.instance) {
    problems.push(`redis.instance must name an ElastiCache node type (e.g. "t4g.micro")`);
  }
  if (redis.cluster !== false && !isInt(redis.cluster.shards, 1, 500)) {
    problems.push(`redis.cluster.shards must be an integer in 1–500, got ${redis.cluster.shards}`);
  }
  if (!isInt(redis.replicasPerShard, 0, MAX_REPLICAS_PER_SHARD)) {
    problems.push(
      `redis.replicasPerShard must be an integer in 0–${MAX_REPLICAS_PER_SHARD}, got ${redis.replicasPerShard}`,
    );
  } else if (redis.replicasPerShard > 0 && network.azs < 2) {
    problems.push(
      `redis.replicasPerShard (${redis.replicasPerShard}) turns on Multi-AZ failover, which needs ` +
        `network.azs ≥ 2 (got ${network.azs}): a replica in the primary's AZ fails with it.`,
    );
  }
  if (!isInt(redis.snapshotRetentionDays, 0, MAX_SNAPSHOT_RETENTION_DAYS)) {
    problems.push(
      `redis.snapshotRetentionDays must be an integer in 0–${MAX_SNAPSHOT_RETENTION_DAYS}, got ${redis.snapshotRetentionDays}`,
    );
  }
  if (cfg.protect && redis.replicasPerShard < 1) {
    problems.push(
      `redis.replicasPerShard is 0 on the protected stage "${cfg.stage}": losing a primary would ` +
        `lose every record on its streams not yet read. Set redis.replicasPerShard to at least 1.`,
    );
  }
  if (cfg.protect && redis.snapshotRetentionDays < 1) {
    problems.push(
      `redis.snapshotRetentionDays is 0 on the protected stage "${cfg.stage}": set it to at least 1 ` +
        `so the stream, DLQ and alert state can be restored.`,
    );
  }
  const primaries = redisPrimaries(cfg);
  if (primaries > stream.shards) {
    problems.push(
      `redis.cluster.shards (${primaries}) exceeds stream.shards (${stream.shards}): ` +
        `${primaries - stream.shards} primaries would carry no stream and producers would be held to ` +
        `the rest. Set stream.shards to at least ${primaries}.`,
    );
  }
  return problems;
}

/** The application's own limits (core/config.ts) on what infra passes it. */
function runtimeSettingProblems(cfg: StageConfig): string[] {
  const problems: string[] = [];
  const { scoring, notifications, influx } = cfg;
  if (scoring.profile !== "seed" && scoring.profile !== "crs") {
    problems.push(`scoring.profile must be "seed" or "crs", got "${scoring.profile}"`);
  }
  if (!isInt(scoring.campaignWindowSeconds, 1, 86_400)) {
    problems.push(
      `scoring.campaignWindowSeconds must be an integer in 1–86400, got ${scoring.campaignWindowSeconds}`,
    );
  }
  if (!isInt(scoring.campaignMinEvents, 0, 10_000)) {
    problems.push(
      `scoring.campaignMinEvents must be an integer in 0–10000 (0 = off), got ${scoring.campaignMinEvents}`,
    );
  }
  for (const [prefix, points] of Object.entries(scoring.weights ?? {})) {
    if (!/^\d{3}$/.test(prefix) || !isInt(points, -1_000_000, 1_000_000)) {
      problems.push(
        `scoring.weights must map three-digit CRS prefixes to integer points, got "${prefix}": ${points}`,
      );
    }
  }
  if (influx.ipAs !== "tag" && influx.ipAs !== "field") {
    problems.push(`influx.ipAs must be "tag" or "field", got "${influx.ipAs}"`);
  }
  if (!isInt(notifications.channelRatePerMinute, 0, 100_000)) {
    problems.push(
      `notifications.channelRatePerMinute must be an integer in 0–100000 (0 = no cap), got ${notifications.channelRatePerMinute}`,
    );
  }
  return problems;
}

/** Alarm thresholds that can fire at all, early enough, and routes that can deliver. */
function alarmProblems(cfg: StageConfig): string[] {
  const problems: string[] = [];
  const { alarms, alerter } = cfg;
  if (alarms.alertEventAgeSeconds >= alerter.maxEventAgeSeconds) {
    problems.push(
      `alarms.alertEventAgeSeconds (${alarms.alertEventAgeSeconds}) must stay below ` +
        `alerter.maxEventAgeSeconds (${alerter.maxEventAgeSeconds}): otherwise alerts expire to the ` +
        `failure queue before the age alarm warns. Lower alarms.alertEventAgeSeconds.`,
    );
  }
  for (const [name, value] of [
    ["alarms.redisMemoryPercent", alarms.redisMemoryPercent],
    ["alarms.redisEngineCpuPercent", alarms.redisEngineCpuPercent],
  ] as const) {
    if (!(value > 0 && value < 100)) {
      problems.push(`${name} must be above 0 and below 100, got ${value}`);
    }
  }
  if (!(alarms.redisCpuCredits >= 0)) {
    problems.push(`alarms.redisCpuCredits must be ≥ 0, got ${alarms.redisCpuCredits}`);
  }
  if (alarms.pagerDutyUrl !== undefined && !/^https:\/\/\S+$/.test(alarms.pagerDutyUrl)) {
    problems.push(
      `alarms.pagerDutyUrl must be PagerDuty's https:// CloudWatch integration URL (WAF_ALARM_PAGERDUTY_URL)`,
    );
  }
  if (alarms.slack && !(alarms.slack.teamId && alarms.slack.channelId)) {
    problems.push(
      "alarms.slack needs both teamId and channelId (WAF_ALARM_SLACK_TEAM_ID, WAF_ALARM_SLACK_CHANNEL_ID)",
    );
  }
  return problems;
}

/** Settings that must be positive integers, by their path in the stage table. */
const POSITIVE_INTEGER_SETTINGS = [
  "scorer.reservedConcurrency",
  "alerter.reservedConcurrency",
  "reader.minTasks",
  "reader.maxTasks",
  "reader.maxInFlight",
  "reader.batchSize",
  "reader.maxRecordBytes",
  "reader.maxRetries",
  "stream.dlqMaxLen",
  "stream.shards",
  "scoring.campaignWindowSeconds",
  "reader.scaling.scaleOutLagPerTask",
  "reader.scaling.scaleInAfterMinutes",
  "alarms.periodSeconds",
  "alarms.evaluationPeriods",
  "alarms.datapointsToAlarm",
  "alarms.functionErrors",
  "alarms.consumerLag",
  "alarms.deadLettered",
  "alarms.eventsFailed",
  "alarms.notificationsFailed",
  "alarms.alertEventAgeSeconds",
] as const;

/** The value at a dotted path of the stage table (`reader.scaling.scaleOutLagPerTask`). */
function settingAt(cfg: StageConfig, path: string): unknown {
  let at: unknown = cfg;
  for (const key of path.split(".")) at = (at as Record<string, unknown> | undefined)?.[key];
  return at;
}

/** Every broken invariant of `cfg`, as sentences; empty when the stage is deployable. */
export function validateStage(cfg: StageConfig): string[] {
  const problems: string[] = [];
  const { scorer, alerter, reader, alarms } = cfg;

  for (const path of POSITIVE_INTEGER_SETTINGS) {
    const value = settingAt(cfg, path);
    if (!Number.isInteger(value) || (value as number) < 1) {
      problems.push(`${path} must be a positive integer, got ${value}`);
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
        `or lower reader.maxTasks to ${maxReaderTasksAllowed(cfg)}, reader.maxInFlight or ` +
        `reader.deploymentMaxPercent.`,
    );
  }

  const payload = maxRecordPayloadBytes(cfg);
  if (payload > MAX_REQUEST_BYTES) {
    problems.push(
      `reader.maxRecordBytes (${reader.maxRecordBytes}) × ${MAX_ESCAPE_FACTOR} (every byte escaped) + ` +
        `${REQUEST_OVERHEAD_BYTES + RECORD_OVERHEAD_BYTES} = ${payload} bytes: one such record alone ` +
        `would not fit the reader's ${MAX_REQUEST_BYTES}-byte request (below Lambda's ` +
        `${LAMBDA_SYNC_PAYLOAD_BYTES}-byte synchronous payload limit). Lower reader.maxRecordBytes.`,
    );
  }

  const heap = readerWorstHeapBytes(cfg);
  const heapLimitMb = Math.min(READER_HEAP_MB, Math.floor(Number.parseFloat(reader.memory) * 768));
  if (heap > heapLimitMb * 2 ** 20) {
    problems.push(
      `the reader could need ${Math.ceil(heap / 2 ** 20)} MiB of heap: (reader.maxInFlight ` +
        `${reader.maxInFlight} + stream.shards ${cfg.stream.shards}) reads × (reader.batchSize ` +
        `${reader.batchSize} × reader.maxRecordBytes ${reader.maxRecordBytes} × 2 + two 5.5 MB ` +
        `bodies) + 64 MiB, above ${heapLimitMb} MiB (its ${READER_HEAP_MB} MiB heap limit, or 75% ` +
        `of reader.memory ${reader.memory}). Lower reader.batchSize or reader.maxRecordBytes, or ` +
        `raise reader.memory.`,
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

  problems.push(...scalingProblems(cfg), ...redisProblems(cfg), ...runtimeSettingProblems(cfg));
  problems.push(...alarmProblems(cfg));

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
 * is and which engine it runs (`WAF_INFLUX_IP_AS=tag` for InfluxDB 3.x), where alarms go. Prefixed `WAF_` so a shell set up for `npm start` (`INFLUXDB_URL`
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
  if (env.WAF_INFLUX_IP_AS) {
    if (env.WAF_INFLUX_IP_AS !== "tag" && env.WAF_INFLUX_IP_AS !== "field") {
      throw new StageConfigError("(env)", [
        `WAF_INFLUX_IP_AS must be "tag" or "field", got "${env.WAF_INFLUX_IP_AS}"`,
      ]);
    }
    influx.ipAs = env.WAF_INFLUX_IP_AS;
  }
  const out: StageOverrides = {};
  if (Object.keys(influx).length > 0) out.influx = influx;
  if (env.WAF_PRODUCER_CIDRS) {
    out.network = {
      producerCidrs: env.WAF_PRODUCER_CIDRS.split(",")
        .map((c) => c.trim())
        .filter(Boolean),
    };
  }
  const alarms: Partial<StageConfig["alarms"]> = {};
  if (env.WAF_ALARM_EMAIL) alarms.email = env.WAF_ALARM_EMAIL;
  if (env.WAF_ALARM_PAGERDUTY_URL) alarms.pagerDutyUrl = env.WAF_ALARM_PAGERDUTY_URL;
  if (env.WAF_ALARM_SLACK_TEAM_ID || env.WAF_ALARM_SLACK_CHANNEL_ID) {
    alarms.slack = {
      teamId: env.WAF_ALARM_SLACK_TEAM_ID ?? "",
      channelId: env.WAF_ALARM_SLACK_CHANNEL_ID ?? "",
    };
  }
  if (Object.keys(alarms).length > 0) out.alarms = alarms;
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
