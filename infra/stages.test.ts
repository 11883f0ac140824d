import { describe, expect, it } from "vitest";
import * as contract from "../core/stream/contract.ts";
import {
  type AlarmDef,
  type AlarmTargets,
  alarmDefinitions,
  isBurstable,
  MAX_METRICS_PER_ALARM,
} from "./alarms.ts";
import { METRICS_NAMESPACE, SERVICE_NAMES } from "./environment.ts";
import { lagPerTaskQueries, readerScaling } from "./scaling.ts";
import {
  appSettings,
  BUILT_IN_STAGES,
  DEFAULT_EIP_QUOTA,
  DRAIN_MARGIN_S,
  elasticIps,
  FARGATE_MAX_STOP_TIMEOUT_S,
  functionsInVpc,
  LAMBDA_SYNC_PAYLOAD_BYTES,
  MAX_ESCAPE_FACTOR,
  MAX_REQUEST_BYTES,
  maxReaderTasksAllowed,
  maxRecordPayloadBytes,
  NOTIFICATION_CHANNELS,
  overridesFromEnv,
  peakPendingEntries,
  peakReaderTasks,
  peakScorerInvocations,
  READER_HEAP_MB,
  RECORD_OVERHEAD_BYTES,
  REQUEST_OVERHEAD_BYTES,
  readerWorstHeapBytes,
  redisModeOf,
  redisNodeCount,
  redisPrimaries,
  requireInfluxUrl,
  resolveStage,
  SCORER_TIMEOUT_OVER_BUDGET,
  StageConfigError,
  validateStage,
} from "./stages.ts";

const EVERY_STAGE = [...BUILT_IN_STAGES, "alice", "pr-42", "ci"];

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof StageConfigError) return error.problems;
    throw error;
  }
  throw new Error("expected a StageConfigError");
}

describe("the stage table", () => {
  it.each(EVERY_STAGE)("resolves %s without a broken invariant", (stage) => {
    const cfg = resolveStage(stage);
    expect(cfg.stage).toBe(stage);
    expect(validateStage(cfg)).toEqual([]);
  });

  it.each(EVERY_STAGE)(
    "never lets %s readers hold more invocations than the scorer reserves",
    (stage) => {
      const cfg = resolveStage(stage);
      expect(cfg.reader.maxInFlight * peakReaderTasks(cfg)).toBeLessThanOrEqual(
        cfg.scorer.reservedConcurrency,
      );
      // the rolling deploy counts: old tasks drain while new ones already read
      expect(peakReaderTasks(cfg)).toBeGreaterThanOrEqual(cfg.reader.maxTasks);
    },
  );

  it("uses the reader's own request limits (core/stream/contract.ts)", () => {
    expect(MAX_REQUEST_BYTES).toBe(contract.MAX_REQUEST_BYTES);
    expect(MAX_ESCAPE_FACTOR).toBe(contract.MAX_ESCAPE_FACTOR);
    expect(RECORD_OVERHEAD_BYTES).toBe(contract.RECORD_OVERHEAD_BYTES);
    expect(REQUEST_OVERHEAD_BYTES).toBe(contract.REQUEST_OVERHEAD_BYTES);
    for (const stage of EVERY_STAGE) {
      const { reader, stream } = resolveStage(stage);
      expect(readerWorstHeapBytes(resolveStage(stage))).toBe(
        contract.readerWorstHeapBytes({ ...reader, shards: stream.shards }),
      );
    }
  });

  it.each(EVERY_STAGE)("lets one %s record at its worst travel alone below 6 MB", (stage) => {
    const cfg = resolveStage(stage);
    // a record of control characters only: every byte a six-byte \u00XX escape
    expect(maxRecordPayloadBytes(cfg)).toBeGreaterThan(cfg.reader.maxRecordBytes * 6);
    expect(maxRecordPayloadBytes(cfg)).toBeLessThanOrEqual(MAX_REQUEST_BYTES);
    expect(MAX_REQUEST_BYTES).toBeLessThan(LAMBDA_SYNC_PAYLOAD_BYTES);
  });

  it.each(EVERY_STAGE)(
    "gives %s a scorer timeout comfortably above the invoke budget and a drain that fits the stop timeout",
    (stage) => {
      const cfg = resolveStage(stage);
      expect(cfg.scorer.timeoutSeconds * 1000).toBeGreaterThanOrEqual(
        SCORER_TIMEOUT_OVER_BUDGET * cfg.reader.invokeBudgetMs,
      );
      expect(cfg.reader.stopTimeoutSeconds).toBeGreaterThanOrEqual(
        cfg.scorer.timeoutSeconds + DRAIN_MARGIN_S,
      );
      expect(cfg.reader.stopTimeoutSeconds).toBeLessThanOrEqual(FARGATE_MAX_STOP_TIMEOUT_S);
      expect(cfg.reader.claimIdleMs).toBeGreaterThanOrEqual(2 * cfg.scorer.timeoutSeconds * 1000);
    },
  );

  it.each(EVERY_STAGE)("sets the %s pending-entries alarm above normal in-flight work", (stage) => {
    const cfg = resolveStage(stage);
    expect(cfg.alarms.pendingEntries).toBeGreaterThan(peakPendingEntries(cfg));
  });

  it("gives production more capacity than staging, and staging more than dev", () => {
    const dev = resolveStage("dev");
    const staging = resolveStage("staging");
    const production = resolveStage("production");
    expect(peakScorerInvocations(production)).toBeGreaterThan(peakScorerInvocations(staging));
    expect(peakScorerInvocations(staging)).toBeGreaterThan(peakScorerInvocations(dev));
    expect(production.reader.minTasks).toBeGreaterThanOrEqual(2);
  });

  it("retains and protects production only", () => {
    expect(appSettings("production")).toEqual({ removal: "retain", protect: true });
    expect(appSettings("staging")).toEqual({ removal: "remove", protect: false });
    expect(appSettings("dev")).toEqual({ removal: "remove", protect: false });
    expect(appSettings("alice")).toEqual({ removal: "remove", protect: false });
    expect(resolveStage("production")).toMatchObject({ removal: "retain", protect: true });
  });

  it("treats an unknown stage name as a personal copy of dev", () => {
    const { stage: _a, ...alice } = resolveStage("alice");
    const { stage: _d, ...dev } = resolveStage("dev");
    expect(alice).toEqual(dev);
  });

  it("gives production a managed Redis cluster with a replica per shard and snapshots", () => {
    const production = resolveStage("production");
    expect(production.redis).toMatchObject({
      mode: "managed",
      cluster: { shards: 2 },
      replicasPerShard: 1,
    });
    expect(production.redis.mode === "managed" && production.redis.snapshotRetentionDays).toBe(7);
    expect(redisPrimaries(production)).toBe(2);
    expect(redisNodeCount(production)).toBe(4);
    expect(redisModeOf(production)).toBe("cluster");
    // one stream shard per primary at least, or a primary carries no stream
    expect(production.stream.shards).toBeGreaterThanOrEqual(redisPrimaries(production));
    // the functions join the VPC to reach it, through a NAT gateway per AZ
    expect(functionsInVpc(production)).toBe(true);
    expect(production.network).toEqual({
      azs: 2,
      nat: "managed",
      bastion: false,
      producerCidrs: [],
    });
  });

  it("keeps dev on one Redis node (mode detected) and staging in cluster mode like production", () => {
    const dev = resolveStage("dev");
    expect(dev.redis).toMatchObject({ mode: "managed", cluster: false, replicasPerShard: 0 });
    expect(redisNodeCount(dev)).toBe(1);
    expect(redisModeOf(dev)).toBeUndefined();
    const staging = resolveStage("staging");
    expect(redisModeOf(staging)).toBe("cluster");
    expect(staging.stream.shards).toBe(2);
  });

  it.each(EVERY_STAGE)(
    "uses maxmemory-safe Redis settings on %s: replicas only with 2 AZs",
    (stage) => {
      const cfg = resolveStage(stage);
      if (cfg.redis.mode === "managed" && cfg.redis.replicasPerShard > 0) {
        expect(cfg.network.azs).toBeGreaterThanOrEqual(2);
      }
    },
  );

  it("fits the default Elastic IP quota with production, dev, staging and one personal stage", () => {
    const stages = ["production", "dev", "staging", "alice"].map((s) => resolveStage(s));
    const total = stages.reduce((n, cfg) => n + elasticIps(cfg), 0);
    expect(total).toBeLessThanOrEqual(DEFAULT_EIP_QUOTA);
    // two per stage would exhaust it at the third stage: non-production stages take one each
    for (const cfg of stages.filter((c) => c.stage !== "production")) {
      expect(elasticIps(cfg)).toBe(1);
    }
  });

  it("waits for a stable reader on staging and production deploys only", () => {
    expect(resolveStage("production").reader.waitForDeploy).toBe(true);
    expect(resolveStage("staging").reader.waitForDeploy).toBe(true);
    expect(resolveStage("dev").reader.waitForDeploy).toBe(false);
    expect(resolveStage("alice").reader.waitForDeploy).toBe(false);
  });

  it.each(EVERY_STAGE)("traces %s's functions with X-Ray", (stage) => {
    expect(resolveStage(stage).tracing).toBe(true);
  });

  it("grades real CRS records with the crs profile on staging and production", () => {
    expect(resolveStage("production").scoring.profile).toBe("crs");
    expect(resolveStage("staging").scoring.profile).toBe("crs");
    expect(resolveStage("dev").scoring.profile).toBe("seed");
    expect(resolveStage("production").influx.ipAs).toBe("field");
  });
});

describe("backlog autoscaling", () => {
  it.each(EVERY_STAGE)("caps %s's reader tasks where the scorer's reservation ends", (stage) => {
    const cfg = resolveStage(stage);
    expect(cfg.reader.maxTasks).toBeLessThanOrEqual(maxReaderTasksAllowed(cfg));
    // the cap is tight: one task more than it allows is refused
    const over = maxReaderTasksAllowed(cfg) + 1;
    expect(() => resolveStage(stage, { reader: { maxTasks: over } })).toThrow(/throttled/);
  });

  it.each(EVERY_STAGE)(
    "scales %s out on lag per task before the lag alarm, and in slowly",
    (stage) => {
      const cfg = resolveStage(stage);
      const plan = readerScaling(cfg);
      expect(plan.scaleOut.threshold).toBe(cfg.reader.scaling.scaleOutLagPerTask);
      expect(plan.scaleIn.threshold).toBe(cfg.reader.scaling.scaleInLagPerTask);
      expect(plan.scaleIn.threshold).toBeLessThan(plan.scaleOut.threshold);
      expect(plan.scaleIn.cooldownSeconds).toBeGreaterThanOrEqual(300);
      expect(plan.scaleIn.steps).toEqual([{ upperBound: 0, adjustment: -1 }]);
      expect(plan.scaleIn.evaluationPeriods).toBe(cfg.reader.scaling.scaleInAfterMinutes);
      expect(cfg.alarms.consumerLag).toBeGreaterThan(
        cfg.reader.maxTasks * cfg.reader.scaling.scaleOutLagPerTask,
      );
    },
  );

  it("adds tasks in proportion to how far the lag per task is above the threshold", () => {
    const plan = readerScaling(resolveStage("production"));
    expect(plan).toMatchObject({ minTasks: 2, maxTasks: 8, enabled: true });
    expect(plan.scaleOut).toMatchObject({
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: 10_000,
      adjustmentType: "PercentChangeInCapacity",
      minAdjustmentMagnitude: 1,
      cooldownSeconds: 60,
    });
    // bounds are relative to the threshold: [10k, 20k) +25 %, [20k, 40k) +50 %, ≥ 40k ×2
    expect(plan.scaleOut.steps).toEqual([
      { lowerBound: 0, upperBound: 10_000, adjustment: 25 },
      { lowerBound: 10_000, upperBound: 30_000, adjustment: 50 },
      { lowerBound: 30_000, adjustment: 100 },
    ]);
    // contiguous, open-ended at the top
    const steps = plan.scaleOut.steps;
    for (let i = 1; i < steps.length; i++) {
      expect(steps[i]?.lowerBound).toBe(steps[i - 1]?.upperBound);
    }
    expect(steps.at(-1)?.upperBound).toBeUndefined();
    expect(plan.scaleIn).toMatchObject({ cooldownSeconds: 600, evaluationPeriods: 15 });
  });

  it("has nothing to scale where min and max tasks are equal (dev)", () => {
    expect(readerScaling(resolveStage("dev")).enabled).toBe(false);
    expect(readerScaling(resolveStage("staging")).enabled).toBe(true);
  });

  it("watches ConsumerLag per running task, with the reader's namespace and dimensions", () => {
    const queries = lagPerTaskQueries(resolveStage("production"), {
      clusterName: "c",
      serviceName: "Reader",
    });
    expect(queries.find((q) => q.returnData)?.expression).toBe("lag / tasks");
    expect(queries.find((q) => q.id === "lag")?.metric).toEqual({
      namespace: METRICS_NAMESPACE,
      metricName: "ConsumerLag",
      dimensions: { service: SERVICE_NAMES.reader, stage: "production" },
      period: 60,
      stat: "Maximum",
    });
    expect(queries.find((q) => q.id === "tasks")?.metric).toMatchObject({
      namespace: "ECS/ContainerInsights",
      metricName: "RunningTaskCount",
      dimensions: { ClusterName: "c", ServiceName: "Reader" },
    });
  });

  it("refuses a scale-in cooldown under 300 s, a scale-in threshold at or above scale-out, and a lag alarm autoscaling would trip", () => {
    expect(() =>
      resolveStage("staging", {
        reader: {
          scaling: { ...resolveStage("staging").reader.scaling, scaleInCooldownSeconds: 120 },
        },
      }),
    ).toThrow(/scaleInCooldownSeconds must be an integer in 300–3600/);
    expect(() =>
      resolveStage("staging", {
        reader: {
          scaling: { ...resolveStage("staging").reader.scaling, scaleInLagPerTask: 1_000 },
        },
      }),
    ).toThrow(/scaleInLagPerTask \(1000\) must stay below/);
    expect(
      problemsOf(() => resolveStage("production", { alarms: { consumerLag: 8_000 } })),
    ).toEqual([
      expect.stringMatching(/alarms.consumerLag \(8000\) must exceed reader.maxTasks \(8\)/),
    ]);
  });
});

describe("overrides", () => {
  it("refuses more in-flight invocations than the scorer's reservation, naming the fix", () => {
    const problems = problemsOf(() => resolveStage("production", { reader: { maxInFlight: 8 } }));
    // (8 in flight also raises what a reader may hold: that is reported on its own)
    const throttled = problems.filter((p) => p.includes("throttled"));
    expect(throttled).toHaveLength(1);
    expect(throttled[0]).toContain("Raise scorer.reservedConcurrency to at least 96");
  });

  it("refuses a lower scorer reservation than the readers need", () => {
    expect(() => resolveStage("staging", { scorer: { reservedConcurrency: 10 } })).toThrow(
      /stage "staging" is not deployable:[\s\S]*24 scorer invocations in flight/,
    );
  });

  it("counts the tasks of a rolling deploy: 8 tasks at 200% need 64, not 32", () => {
    expect(() =>
      resolveStage("production", {
        reader: { deploymentMaxPercent: 200 },
        scorer: { reservedConcurrency: 40 },
      }),
    ).toThrow(/64 scorer invocations in flight/);
    expect(() =>
      resolveStage("production", { reader: { deploymentMaxPercent: 200 } }),
    ).not.toThrow();
  });

  it("accepts an override that keeps every invariant", () => {
    const cfg = resolveStage("staging", {
      reader: { maxTasks: 4 },
      scorer: { reservedConcurrency: 32 },
    });
    expect(cfg.reader.maxTasks).toBe(4);
    expect(cfg.reader.maxInFlight).toBe(4); // untouched keys of the section are kept
  });

  it.each(EVERY_STAGE)("bounds what a %s reader can hold below its heap limit", (stage) => {
    const cfg = resolveStage(stage);
    expect(readerWorstHeapBytes(cfg)).toBeLessThanOrEqual(READER_HEAP_MB * 2 ** 20);
    expect(readerWorstHeapBytes(cfg)).toBeLessThanOrEqual(
      Number.parseFloat(cfg.reader.memory) * 0.75 * 2 ** 30,
    );
  });

  it("refuses batches of large records a reader could not hold", () => {
    // production: 6 reads × (1000 × 64 KiB × 2 + 11 MB) + 64 MiB ≈ 920 MiB > 768
    expect(
      problemsOf(() => resolveStage("production", { reader: { maxRecordBytes: 64 * 1024 } })),
    ).toEqual([expect.stringContaining("Lower reader.batchSize or reader.maxRecordBytes")]);
    // a 0.5 GB task allows 384 MiB whatever the heap limit: 3 × (2000 × 64 KiB + 11 MB) + 64
    expect(
      problemsOf(() => resolveStage("dev", { reader: { batchSize: 2000 } })).join("\n"),
    ).toMatch(/75% of reader.memory 0.5 GB/);
  });

  it("refuses a record limit whose worst record could not travel alone", () => {
    // batches are cut by bytes: the batch size is no longer bounded by the payload
    expect(() => resolveStage("dev", { reader: { batchSize: 100 } })).not.toThrow();
    expect(
      problemsOf(() => resolveStage("dev", { reader: { maxRecordBytes: 1024 * 1024 } })),
    ).toEqual([expect.stringContaining("Lower reader.maxRecordBytes")]);
    expect(() => resolveStage("dev", { reader: { maxRecordBytes: 800 * 1024 } })).not.toThrow();
  });

  it("refuses a scorer timeout too close to the invoke budget", () => {
    expect(() => resolveStage("dev", { reader: { invokeBudgetMs: 20_000 } })).toThrow(
      /at least 2× reader.invokeBudgetMs/,
    );
  });

  it("refuses a stop timeout shorter than the drain or longer than Fargate allows", () => {
    expect(() => resolveStage("dev", { reader: { stopTimeoutSeconds: 20 } })).toThrow(
      /does not exceed the drain time \(40 s/,
    );
    expect(() =>
      resolveStage("production", {
        scorer: { timeoutSeconds: 300 },
        reader: { stopTimeoutSeconds: 310, claimIdleMs: 600_000 },
      }),
    ).toThrow(/exceeds Fargate's maximum of 120 s/);
  });

  it("refuses a claim idle time a running invocation could outlast", () => {
    expect(() => resolveStage("production", { reader: { claimIdleMs: 60_000 } })).toThrow(
      /claimIdleMs/,
    );
  });

  it("refuses a rolling-deploy percentage that leaves no room for a new task", () => {
    expect(() => resolveStage("dev", { reader: { deploymentMaxPercent: 150 } })).toThrow(
      /deployments would stall/,
    );
  });

  it("refuses functions in a VPC without NAT", () => {
    expect(() => resolveStage("dev", { network: { nat: "none" } })).toThrow(/network.nat/);
    expect(() => resolveStage("production", { network: { nat: "none" } })).toThrow(/network.nat/);
  });

  it("refuses Multi-AZ (Redis replicas, a managed InfluxDB standby) in one AZ", () => {
    expect(() =>
      resolveStage("dev", {
        redis: {
          mode: "managed",
          instance: "t4g.micro",
          cluster: false,
          replicasPerShard: 1,
          snapshotRetentionDays: 0,
        },
      }),
    ).toThrow(/needs network.azs ≥ 2/);
    expect(() =>
      resolveStage("dev", {
        influx: { managed: { instanceType: "db.influx.medium", storageGb: 20, multiAz: true } },
      }),
    ).toThrow(/set network.azs to 2/);
  });

  it("refuses a protected stage whose Redis could lose the stream", () => {
    const redis = resolveStage("production").redis;
    if (redis.mode !== "managed") throw new Error("production Redis is managed");
    const problems = problemsOf(() =>
      resolveStage("production", {
        redis: { ...redis, replicasPerShard: 0, snapshotRetentionDays: 0 },
      }),
    );
    expect(problems).toEqual([
      expect.stringContaining('redis.replicasPerShard is 0 on the protected stage "production"'),
      expect.stringContaining(
        'redis.snapshotRetentionDays is 0 on the protected stage "production"',
      ),
    ]);
    expect(() =>
      resolveStage("production", { redis: { ...redis, snapshotRetentionDays: 36 } }),
    ).toThrow(/snapshotRetentionDays must be an integer in 0–35/);
  });

  it("refuses more Redis primaries than stream shards, naming the fix", () => {
    expect(problemsOf(() => resolveStage("production", { stream: { shards: 1 } }))).toEqual([
      expect.stringContaining("Set stream.shards to at least 2"),
    ]);
    expect(() => resolveStage("dev", { stream: { shards: 65 } })).toThrow(/stream.shards must be/);
    // more stream shards than primaries is fine (several per primary)
    expect(resolveStage("production", { stream: { shards: 4 } }).stream.shards).toBe(4);
  });

  it("refuses application settings core/config.ts would refuse at start", () => {
    const problems = problemsOf(() =>
      resolveStage("dev", {
        scoring: {
          profile: "crs",
          campaignWindowSeconds: 0,
          campaignMinEvents: 10_001,
          weights: { "94": 5, "942": 1.5 },
        },
        notifications: { channelRatePerMinute: -1 },
      }),
    );
    expect(problems.join("\n")).toMatch(/scoring.campaignWindowSeconds must be/);
    expect(problems.join("\n")).toMatch(/scoring.campaignMinEvents must be an integer in 0–10000/);
    expect(problems.join("\n")).toMatch(/"94": 5/);
    expect(problems.join("\n")).toMatch(/"942": 1.5/);
    expect(problems.join("\n")).toMatch(/notifications.channelRatePerMinute/);
  });

  it("refuses an alert-age alarm that would only fire once alerts expire", () => {
    expect(() => resolveStage("dev", { alarms: { alertEventAgeSeconds: 3600 } })).toThrow(
      /alertEventAgeSeconds \(3600\) must stay below alerter.maxEventAgeSeconds \(3600\)/,
    );
  });

  it("refuses a managed InfluxDB on the v1 API", () => {
    expect(() =>
      resolveStage("dev", {
        influx: {
          api: "v1",
          managed: { instanceType: "db.influx.medium", storageGb: 20, multiAz: false },
        },
      }),
    ).toThrow(/influx.api must be "v2"/);
  });

  it("refuses a Fargate CPU/memory pair that does not exist", () => {
    expect(() => resolveStage("dev", { reader: { memory: "4 GB" } })).toThrow(/not a Fargate size/);
  });

  it("refuses nonsense numbers and lists every problem at once", () => {
    const problems = problemsOf(() =>
      resolveStage("dev", {
        scorer: { reservedConcurrency: 0, memoryMb: 64 },
        alerter: { maxRetryAttempts: 3 },
        reader: { minTasks: 2, maxTasks: 1 },
      }),
    );
    expect(problems.join("\n")).toMatch(/scorer.reservedConcurrency must be a positive integer/);
    expect(problems.join("\n")).toMatch(/scorer.memoryMb/);
    expect(problems.join("\n")).toMatch(/alerter.maxRetryAttempts/);
    expect(problems.join("\n")).toMatch(/reader.minTasks \(2\) exceeds reader.maxTasks \(1\)/);
  });
});

describe("deploy-time environment", () => {
  it("reads the InfluxDB location and alarm email from WAF_ variables only", () => {
    const env = {
      INFLUXDB_URL: "http://localhost:8086",
      WAF_INFLUXDB_URL: "https://influx.example.com:8086",
      WAF_INFLUXDB_BUCKET: "waf",
      WAF_ALARM_EMAIL: "soc@example.com",
    };
    const cfg = resolveStage("staging", overridesFromEnv(env));
    expect(cfg.influx).toMatchObject({
      url: "https://influx.example.com:8086",
      bucket: "waf",
      org: "waf-org",
      api: "v2",
    });
    expect(cfg.alarms.email).toBe("soc@example.com");
    expect(cfg.alarms.consumerLag).toBe(10_000);
    expect(overridesFromEnv({})).toEqual({});
  });

  it("refuses an unknown InfluxDB API", () => {
    expect(() => overridesFromEnv({ WAF_INFLUXDB_API: "v3" })).toThrow(/WAF_INFLUXDB_API/);
  });

  it("asks for an InfluxDB URL when the stage has none", () => {
    expect(() => requireInfluxUrl(resolveStage("production"))).toThrow(
      /WAF_INFLUXDB_URL=.*--stage production/,
    );
    expect(requireInfluxUrl(resolveStage("dev", { influx: { url: "https://i:8086" } }))).toBe(
      "https://i:8086",
    );
  });

  it("refuses a notification deadline that the alert function's timeout cannot hold", () => {
    expect(() => resolveStage("dev", { notifications: { deadlineMs: 30_000 } })).toThrow(
      /notifications\.deadlineMs/,
    );
    expect(() => resolveStage("dev", { notifications: { emailFrom: "a@example.com" } })).toThrow(
      /emailFrom and notifications\.emailTo must be set together/,
    );
  });
});

describe("alarms", () => {
  const targets = (
    cfg: ReturnType<typeof resolveStage>,
    over: Partial<AlarmTargets<string>> = {},
  ) => ({
    scorer: "scorer-fn",
    alerter: "alerter-fn",
    tick: "tick-fn",
    failureQueue: "failures",
    reader: { clusterName: "cluster", serviceName: "Reader" },
    redisNodes: Array.from({ length: redisNodeCount(cfg) }, (_, i) => `rg-${i + 1}`),
    ...over,
  });
  const alarmsOf = (cfg: ReturnType<typeof resolveStage>, over?: Partial<AlarmTargets<string>>) =>
    alarmDefinitions(cfg, targets(cfg, over));
  const find = (defs: AlarmDef<string>[], component: string, check: string) => {
    const def = defs.find((d) => d.component === component && d.check === check);
    if (!def) throw new Error(`no ${component}-${check} alarm`);
    return def;
  };

  it.each(EVERY_STAGE)(
    "gives %s's alarms unique names and exactly one metric source each",
    (stage) => {
      const defs = alarmsOf(resolveStage(stage));
      const names = defs.map((d) => `${d.component}-${d.check}`);
      expect(new Set(names).size).toBe(names.length);
      for (const d of defs) {
        expect(Boolean(d.metric) !== Boolean(d.math)).toBe(true);
        expect(d.datapointsToAlarm).toBeLessThanOrEqual(d.evaluationPeriods);
        expect(d.math?.metrics.length ?? 0).toBeLessThanOrEqual(MAX_METRICS_PER_ALARM);
      }
    },
  );

  it.each(EVERY_STAGE)("takes every %s alarm threshold from the stage table", (stage) => {
    const cfg = resolveStage(stage);
    const defs = alarmsOf(cfg);
    const a = cfg.alarms;
    expect(find(defs, "Reader", "DeadLettered").threshold).toBe(a.deadLettered);
    expect(find(defs, "Reader", "ConsumerLag").threshold).toBe(a.consumerLag);
    expect(find(defs, "Reader", "PendingEntries").threshold).toBe(a.pendingEntries);
    expect(find(defs, "Scorer", "EventsFailed").threshold).toBe(a.eventsFailed);
    expect(find(defs, "Scorer", "Errors").threshold).toBe(a.functionErrors);
    expect(find(defs, "Alerter", "AsyncEventAge").threshold).toBe(a.alertEventAgeSeconds * 1000);
    for (const channel of NOTIFICATION_CHANNELS) {
      expect(find(defs, "Alerter", `NotificationsFailed_${channel}`).threshold).toBe(
        a.notificationsFailed,
      );
    }
    expect(find(defs, "Redis", "Memory").threshold).toBe(a.redisMemoryPercent);
    expect(find(defs, "Redis", "EngineCpu").threshold).toBe(a.redisEngineCpuPercent);
    // and a change in the table moves the alarm
    const moved = alarmsOf(
      resolveStage(stage, { alarms: { deadLettered: a.deadLettered + 7, eventsFailed: 99 } }),
    );
    expect(find(moved, "Reader", "DeadLettered").threshold).toBe(a.deadLettered + 7);
    expect(find(moved, "Scorer", "EventsFailed").threshold).toBe(99);
  });

  it("alarms on the reader's DeadLettered counter (Sum over 5 min), not on the capped DLQ's length", () => {
    const defs = alarmsOf(resolveStage("production"));
    expect(find(defs, "Reader", "DeadLettered")).toMatchObject({
      comparison: "GreaterThanOrEqualToThreshold",
      threshold: 10,
      evaluationPeriods: 1,
      missing: "notBreaching",
      metric: {
        namespace: METRICS_NAMESPACE,
        name: "DeadLettered",
        dimensions: { service: SERVICE_NAMES.reader, stage: "production" },
        stat: "Sum",
        periodSeconds: 300,
      },
    });
    const watched = defs.flatMap((d) => [
      d.metric?.name,
      ...(d.math?.metrics ?? []).map((m) => m.name),
    ]);
    expect(watched).not.toContain("DlqLength");
    expect(defs.some((d) => d.math?.expression.includes("DIFF"))).toBe(false);
  });

  it("keeps the failed-alerts alarm in its state when SQS stops publishing", () => {
    const failed = find(alarmsOf(resolveStage("production")), "Alerter", "FailedAlerts");
    expect(failed.missing).toBe("ignore");
    expect(failed.metric).toMatchObject({
      namespace: "AWS/SQS",
      name: "ApproximateNumberOfMessagesVisible",
      dimensions: { QueueName: "failures" },
    });
  });

  it("replaces the alerter's throttle alarm by AsyncEventAge and AsyncEventsDropped, the scorer keeps its own", () => {
    const cfg = resolveStage("production");
    const defs = alarmsOf(cfg);
    expect(defs.find((d) => d.component === "Alerter" && d.check === "Throttles")).toBeUndefined();
    expect(find(defs, "Scorer", "Throttles").metric?.dimensions).toEqual({
      FunctionName: "scorer-fn",
    });
    const age = find(defs, "Alerter", "AsyncEventAge");
    expect(age.metric).toMatchObject({ name: "AsyncEventAge", stat: "Maximum" });
    expect(age.metric?.dimensions).toEqual({ FunctionName: "alerter-fn" });
    // it warns before Lambda gives up on the alert
    expect(age.threshold).toBeLessThan(cfg.alerter.maxEventAgeSeconds * 1000);
    expect(find(defs, "Alerter", "AsyncEventsDropped")).toMatchObject({
      comparison: "GreaterThanThreshold",
      threshold: 0,
      metric: {
        name: "AsyncEventsDropped",
        stat: "Sum",
        dimensions: { FunctionName: "alerter-fn" },
      },
    });
  });

  it("watches the one-minute tick's own function, never the alerter's failure path", () => {
    const defs = alarmsOf(resolveStage("production"));
    expect(find(defs, "AlerterTick", "Errors").metric?.dimensions).toEqual({
      FunctionName: "tick-fn",
    });
    const onAlerter = defs.filter((d) => d.metric?.dimensions.FunctionName === "alerter-fn");
    expect(onAlerter.map((d) => d.check)).toContain("AsyncEventsDropped");
    expect(defs.filter((d) => d.metric?.dimensions.FunctionName === "tick-fn")).toHaveLength(1);
  });

  it("alarms on each channel's NotificationsFailed and on the scorer's EventsFailed and PointsRefused", () => {
    const defs = alarmsOf(resolveStage("staging"));
    for (const channel of ["slack", "pagerduty", "webhook", "email"]) {
      expect(find(defs, "Alerter", `NotificationsFailed_${channel}`).metric).toEqual({
        namespace: METRICS_NAMESPACE,
        name: `NotificationsFailed_${channel}`,
        dimensions: { service: SERVICE_NAMES.alerter, stage: "staging" },
        stat: "Sum",
        periodSeconds: 60,
      });
    }
    for (const check of ["EventsFailed", "PointsRefused"]) {
      expect(find(defs, "Scorer", check).metric?.dimensions).toEqual({
        service: SERVICE_NAMES.scorer,
        stage: "staging",
      });
    }
  });

  it("has no reader alarms under sst dev, where the reader runs on the laptop", () => {
    const defs = alarmsOf(resolveStage("alice"), { reader: undefined });
    expect(defs.filter((d) => d.component === "Reader")).toEqual([]);
    expect(alarmsOf(resolveStage("alice")).filter((d) => d.component === "Reader")).toHaveLength(5);
  });

  it("watches every ElastiCache node: worst memory and engine CPU, credits on burstable nodes only", () => {
    const production = alarmsOf(resolveStage("production"));
    const memory = find(production, "Redis", "Memory");
    expect(memory.math?.expression).toBe("MAX([m0,m1,m2,m3])");
    expect(memory.math?.metrics.map((m) => m.dimensions)).toEqual([
      { CacheClusterId: "rg-1" },
      { CacheClusterId: "rg-2" },
      { CacheClusterId: "rg-3" },
      { CacheClusterId: "rg-4" },
    ]);
    expect(memory.math?.metrics[0]).toMatchObject({
      namespace: "AWS/ElastiCache",
      name: "DatabaseMemoryUsagePercentage",
    });
    // m7g: no CPU credits
    expect(production.some((d) => d.check.startsWith("CpuCredits"))).toBe(false);

    const staging = alarmsOf(resolveStage("staging"));
    expect(find(staging, "Redis", "CpuCredits")).toMatchObject({
      comparison: "LessThanOrEqualToThreshold",
      threshold: resolveStage("staging").alarms.redisCpuCredits,
      math: { expression: "MIN([m0,m1])" },
    });
    // one node: the metric itself, no math
    expect(find(alarmsOf(resolveStage("dev")), "Redis", "Memory").metric?.dimensions).toEqual({
      CacheClusterId: "rg-1",
    });
  });

  it("splits a large cluster's nodes over alarms of at most 10 metrics", () => {
    const cfg = resolveStage("production");
    const nodes = Array.from({ length: 23 }, (_, i) => `n${i}`);
    const memory = alarmsOf(cfg, { redisNodes: nodes }).filter((d) => d.check.startsWith("Memory"));
    expect(memory.map((d) => d.check)).toEqual(["Memory1", "Memory2", "Memory3"]);
    expect(memory.map((d) => d.math?.metrics.length)).toEqual([10, 10, 3]);
  });

  it("has no Redis alarms for an external Redis", () => {
    const cfg = resolveStage("production", {
      redis: { mode: "external" },
      network: { azs: 2, nat: "none", bastion: false },
    });
    expect(alarmsOf(cfg, { redisNodes: [] }).filter((d) => d.component === "Redis")).toEqual([]);
    expect(isBurstable("t4g.micro")).toBe(true);
    expect(isBurstable("m7g.large")).toBe(false);
  });
});

describe("deploy-time routing and InfluxDB engine", () => {
  it("reads alarm routes and the InfluxDB 3.x choice from WAF_ variables", () => {
    const cfg = resolveStage(
      "production",
      overridesFromEnv({
        WAF_INFLUX_IP_AS: "tag",
        WAF_ALARM_PAGERDUTY_URL: "https://events.pagerduty.com/integration/abc/enqueue",
        WAF_ALARM_SLACK_TEAM_ID: "T0123",
        WAF_ALARM_SLACK_CHANNEL_ID: "C0456",
      }),
    );
    expect(cfg.influx.ipAs).toBe("tag");
    expect(cfg.alarms).toMatchObject({
      pagerDutyUrl: "https://events.pagerduty.com/integration/abc/enqueue",
      slack: { teamId: "T0123", channelId: "C0456" },
      // the rest of the section is kept
      consumerLag: 100_000,
    });
  });

  it("admits the shippers' networks to a managed Redis from WAF_PRODUCER_CIDRS, and only CIDRs", () => {
    const cfg = resolveStage(
      "production",
      overridesFromEnv({ WAF_PRODUCER_CIDRS: "203.0.113.0/24, 10.20.0.0/16" }),
    );
    expect(cfg.network.producerCidrs).toEqual(["203.0.113.0/24", "10.20.0.0/16"]);
    expect(cfg.network.nat).toBe("managed"); // the rest of the section is kept
    expect(() =>
      resolveStage("production", overridesFromEnv({ WAF_PRODUCER_CIDRS: "203.0.113.0/33" })),
    ).toThrow(/network.producerCidrs must be IPv4 CIDRs/);
    expect(() =>
      resolveStage("production", overridesFromEnv({ WAF_PRODUCER_CIDRS: "shippers" })),
    ).toThrow(/got "shippers"/);
  });

  it("refuses a half-configured Slack route, a non-https PagerDuty URL and an unknown INFLUX_IP_AS", () => {
    expect(() =>
      resolveStage("dev", overridesFromEnv({ WAF_ALARM_SLACK_TEAM_ID: "T0123" })),
    ).toThrow(/alarms.slack needs both teamId and channelId/);
    expect(() =>
      resolveStage("dev", overridesFromEnv({ WAF_ALARM_PAGERDUTY_URL: "http://x" })),
    ).toThrow(/pagerDutyUrl must be PagerDuty's https/);
    expect(() => overridesFromEnv({ WAF_INFLUX_IP_AS: "both" })).toThrow(/WAF_INFLUX_IP_AS/);
  });
});
