import { describe, expect, it } from "vitest";
import {
  appSettings,
  BUILT_IN_STAGES,
  DRAIN_MARGIN_S,
  FARGATE_MAX_STOP_TIMEOUT_S,
  functionsInVpc,
  LAMBDA_SYNC_PAYLOAD_BYTES,
  maxBatchPayloadBytes,
  overridesFromEnv,
  peakPendingEntries,
  peakReaderTasks,
  peakScorerInvocations,
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

  it.each(EVERY_STAGE)("keeps a full %s batch below Lambda's 6 MB sync payload", (stage) => {
    const cfg = resolveStage(stage);
    expect(cfg.reader.batchSize * cfg.reader.maxRecordBytes).toBeLessThan(
      LAMBDA_SYNC_PAYLOAD_BYTES,
    );
    expect(maxBatchPayloadBytes(cfg)).toBeLessThan(LAMBDA_SYNC_PAYLOAD_BYTES);
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

  it("uses the operators' Redis in production and a managed one elsewhere", () => {
    expect(resolveStage("production").redis).toEqual({ mode: "external" });
    expect(resolveStage("dev").redis.mode).toBe("managed");
    expect(functionsInVpc(resolveStage("production"))).toBe(false);
    expect(functionsInVpc(resolveStage("dev"))).toBe(true);
  });
});

describe("overrides", () => {
  it("refuses more in-flight invocations than the scorer's reservation, naming the fix", () => {
    const problems = problemsOf(() => resolveStage("production", { reader: { maxInFlight: 8 } }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("throttled");
    expect(problems[0]).toContain("Raise scorer.reservedConcurrency to at least 96");
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

  it("refuses a batch that could exceed the 6 MB payload", () => {
    expect(problemsOf(() => resolveStage("dev", { reader: { batchSize: 100 } }))).toEqual([
      expect.stringContaining("synchronous payload limit"),
    ]);
    expect(() => resolveStage("dev", { reader: { maxRecordBytes: 1024 * 1024 } })).toThrow(
      /payload limit/,
    );
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
    expect(() =>
      resolveStage("production", {
        influx: { managed: { instanceType: "db.influx.medium", storageGb: 20, multiAz: true } },
      }),
    ).toThrow(/network.nat/);
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
