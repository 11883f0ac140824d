import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  it("applies the SPEC §6 defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      REDIS_URL: "redis://localhost:6379",
      INFLUXDB_URL: "http://localhost:8086",
      INFLUXDB_ORG: "waf-org",
      INFLUXDB_BUCKET: "waf-realtime",
      INFLUXDB_API: "v2",
      LOG_LEVEL: "info",
      STREAM_KEY: "waf-realtime",
      STREAM_FIELD: "event",
      CONSUMER_GROUP: "realtime-processor",
      BATCH_SIZE: 100,
      BATCH_WINDOW_MS: 50,
      MAX_IN_FLIGHT: 4,
      MAX_RETRIES: 5,
      CLAIM_IDLE_MS: 60000,
      DLQ_STREAM_KEY: "waf-realtime:dlq",
      DLQ_MAXLEN: 100000,
      MAX_RECORD_BYTES: 1048576,
      SCORING_WEIGHTS: { "942": 30, "941": 25, "932": 35, "930": 20 },
      SEVERITY_THRESHOLDS: { critical: 80, high: 60, medium: 40 },
      MALICIOUS_IPS: [],
      ALLOWLIST_IPS: [],
      REPEAT_OFFENDER_THRESHOLD: 0,
      REPEAT_OFFENDER_WINDOW_S: 300,
      IP_MASKING: "off",
      ALERT_LIST_KEY: "waf-alerts",
      ALERT_LIST_MAX: 10000,
      ALERT_LIST_TTL_S: 604800,
      ALERT_THROTTLE_S: 300,
      PAGERDUTY_MIN_SEVERITY: 90,
      PAGERDUTY_EVENTS_URL: "https://events.pagerduty.com/v2/enqueue",
      HEALTH_PORT: 8080,
    });
    expect(c.CONSUMER_NAME).toMatch(/-\d+$/);
    expect(c.SLACK_WEBHOOK_URL).toBeUndefined();
  });

  it("reads values", () => {
    const c = loadConfig({
      REDIS_URL: "rediss://:pw@cache:6380",
      BATCH_SIZE: "250",
      SCORING_WEIGHTS: '{"933": 10}',
      SEVERITY_THRESHOLDS: "90, 70, 50",
      MALICIOUS_IPS: "203.0.113.0/24, 2001:db8::1",
      IP_MASKING: "hash",
      IP_HASH_KEY: "secret",
      INFLUXDB_API: "v1",
      LOG_LEVEL: "DEBUG",
    });
    expect(c).toMatchObject({
      REDIS_URL: "rediss://:pw@cache:6380",
      BATCH_SIZE: 250,
      SCORING_WEIGHTS: { "933": 10 },
      SEVERITY_THRESHOLDS: { critical: 90, high: 70, medium: 50 },
      MALICIOUS_IPS: ["203.0.113.0/24", "2001:db8::1"],
      INFLUXDB_API: "v1",
      LOG_LEVEL: "debug",
    });
  });

  it("treats blank values as unset", () => {
    expect(loadConfig({ BATCH_SIZE: " ", SLACK_WEBHOOK_URL: "" }).BATCH_SIZE).toBe(100);
  });

  it.each([
    ["REDIS_URL", "http://x"],
    ["REDIS_URL", "not a url"],
    ["INFLUXDB_URL", "ftp://x"],
    ["INFLUXDB_API", "v3"],
    ["BATCH_SIZE", "0"],
    ["BATCH_SIZE", "ten"],
    ["BATCH_SIZE", "1.5"],
    ["MAX_IN_FLIGHT", "-1"],
    ["HEALTH_PORT", "70000"],
    ["SCORING_WEIGHTS", "{nope"],
    ["SCORING_WEIGHTS", '{"94": 3}'],
    ["SCORING_WEIGHTS", '{"942": "30"}'],
    ["SCORING_WEIGHTS", "[1]"],
    ["SEVERITY_THRESHOLDS", "80,60"],
    ["SEVERITY_THRESHOLDS", "40,60,80"],
    ["SEVERITY_THRESHOLDS", "a,b,c"],
    ["MALICIOUS_IPS", "1.2.3.4, evil.example"],
    ["ALLOWLIST_IPS", "10.0.0.0/33"],
    ["IP_MASKING", "partial"],
    ["LOG_LEVEL", "loud"],
    ["SLACK_WEBHOOK_URL", "hooks.slack.com/x"],
  ])("stops on a bad %s (%j) naming the variable", (name, value) => {
    let err: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(name);
    expect((err as Error).message).toContain(name);
  });

  it("requires IP_HASH_KEY with IP_MASKING=hash", () => {
    expect(() => loadConfig({ IP_MASKING: "hash" })).toThrow(
      /IP_HASH_KEY is required when IP_MASKING=hash/,
    );
  });

  it("names every bad variable at once", () => {
    expect(() => loadConfig({ BATCH_SIZE: "x", DLQ_MAXLEN: "y" })).toThrow(
      /BATCH_SIZE.*DLQ_MAXLEN/,
    );
  });

  it("keeps __proto__ in SCORING_WEIGHTS from touching prototypes", () => {
    expect(() => loadConfig({ SCORING_WEIGHTS: '{"__proto__": {"942": 1}}' })).toThrow(ConfigError);
    expect(({} as Record<string, unknown>)["942"]).toBeUndefined();
  });
});
