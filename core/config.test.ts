import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  it("applies the reference §6 defaults", () => {
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
      SCORING_PROFILE: "seed",
      CAMPAIGN_WINDOW_S: 300,
      CAMPAIGN_MIN_EVENTS: 20,
    });
    // Unset: the reader names itself host-pid at start-up (functions/reader/main.ts).
    expect(c.CONSUMER_NAME).toBeUndefined();
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

  it.each([
    [{ SCORING_PROFILE: "crs" }, { SCORING_PROFILE: "crs" }],
    [{ SCORING_PROFILE: " CRS " }, { SCORING_PROFILE: "crs" }],
    [{ SCORING_PROFILE: "seed" }, { SCORING_PROFILE: "seed" }],
    [{ CAMPAIGN_WINDOW_S: "60" }, { CAMPAIGN_WINDOW_S: 60 }],
    [{ CAMPAIGN_MIN_EVENTS: "0" }, { CAMPAIGN_MIN_EVENTS: 0 }],
    [{ CAMPAIGN_MIN_EVENTS: "5" }, { CAMPAIGN_MIN_EVENTS: 5 }],
  ])("reads the scoring profile and campaign settings %j", (env, expected) => {
    expect(loadConfig(env)).toMatchObject(expected);
  });

  it("has the shipper's defaults: trim at about a million entries, no health endpoint", () => {
    const c = loadConfig({});
    expect(c.SHIP_MAXLEN).toBe(1_000_000);
    expect(c.SHIP_HEALTH_PORT).toBeUndefined();
    expect(loadConfig({ SHIP_HEALTH_PORT: "9101", SHIP_MAXLEN: "5000" })).toMatchObject({
      SHIP_HEALTH_PORT: 9101,
      SHIP_MAXLEN: 5000,
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
    ["SHIP_MAXLEN", "0"],
    ["SHIP_MAXLEN", "lots"],
    ["SHIP_HEALTH_PORT", "70000"],
    ["SHIP_HEALTH_PORT", "http"],
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
    ["SCORING_PROFILE", "strict"],
    ["SCORING_PROFILE", "seed,crs"],
    ["CAMPAIGN_WINDOW_S", "0"],
    ["CAMPAIGN_WINDOW_S", "5m"],
    ["CAMPAIGN_WINDOW_S", "86401"],
    ["CAMPAIGN_MIN_EVENTS", "-1"],
    ["CAMPAIGN_MIN_EVENTS", "twenty"],
    ["CAMPAIGN_MIN_EVENTS", "10001"],
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

describe("notification and reputation settings", () => {
  it("defaults per-channel minimum severities, timeouts and reputation refresh", () => {
    expect(loadConfig({})).toMatchObject({
      SLACK_MIN_SEVERITY: 80,
      WEBHOOK_MIN_SEVERITY: 80,
      EMAIL_MIN_SEVERITY: 90,
      PAGERDUTY_MIN_SEVERITY: 90,
      ALERT_THROTTLE_S: 300,
      ALERT_CHANNEL_RATE_PER_MIN: 60,
      ALERT_EMAIL_TO: [],
      NOTIFY_TIMEOUT_MS: 3000,
      NOTIFY_DEADLINE_MS: 10000,
      REPUTATION_REFRESH_S: 30,
      REPEAT_OFFENDER_TTL_S: 3600,
    });
    expect(loadConfig({}).ALERT_EMAIL_FROM).toBeUndefined();
  });

  it("reads them", () => {
    expect(
      loadConfig({
        SLACK_MIN_SEVERITY: "100",
        WEBHOOK_MIN_SEVERITY: "0",
        EMAIL_MIN_SEVERITY: "120",
        ALERT_EMAIL_FROM: "WAF alerts <waf@example.com>",
        ALERT_EMAIL_TO: "soc@example.com, oncall@example.com",
        NOTIFY_TIMEOUT_MS: "500",
        NOTIFY_DEADLINE_MS: "2000",
        REPUTATION_REFRESH_S: "5",
        REPEAT_OFFENDER_TTL_S: "60",
        ALERT_THROTTLE_S: "0",
        ALERT_CHANNEL_RATE_PER_MIN: "0",
      }),
    ).toMatchObject({
      SLACK_MIN_SEVERITY: 100,
      WEBHOOK_MIN_SEVERITY: 0,
      EMAIL_MIN_SEVERITY: 120,
      ALERT_EMAIL_FROM: "WAF alerts <waf@example.com>",
      ALERT_EMAIL_TO: ["soc@example.com", "oncall@example.com"],
      NOTIFY_TIMEOUT_MS: 500,
      NOTIFY_DEADLINE_MS: 2000,
      REPUTATION_REFRESH_S: 5,
      REPEAT_OFFENDER_TTL_S: 60,
      ALERT_THROTTLE_S: 0,
      ALERT_CHANNEL_RATE_PER_MIN: 0,
    });
  });

  it.each([
    ["SLACK_MIN_SEVERITY", "high"],
    ["WEBHOOK_MIN_SEVERITY", "-1"],
    ["EMAIL_MIN_SEVERITY", "9.5"],
    ["ALERT_EMAIL_FROM", "not an address"],
    ["ALERT_EMAIL_TO", "soc@example.com, nobody"],
    ["NOTIFY_TIMEOUT_MS", "10"],
    ["REPUTATION_REFRESH_S", "0"],
    ["REPEAT_OFFENDER_TTL_S", "0"],
    ["ALERT_CHANNEL_RATE_PER_MIN", "-1"],
    ["PAGERDUTY_EVENTS_URL", "events.pagerduty.com/v2/enqueue"],
    ["ALERT_WEBHOOK_URL", "ftp://hooks.example/"],
  ])("stops on a bad %s (%j) naming the variable", (name, value) => {
    const extra =
      name === "ALERT_EMAIL_FROM"
        ? { ALERT_EMAIL_TO: "soc@example.com" }
        : name === "ALERT_EMAIL_TO"
          ? { ALERT_EMAIL_FROM: "waf@example.com" }
          : {};
    let err: unknown;
    try {
      loadConfig({ ...extra, [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(name);
  });

  it("needs both ALERT_EMAIL_FROM and ALERT_EMAIL_TO for email", () => {
    expect(() => loadConfig({ ALERT_EMAIL_FROM: "waf@example.com" })).toThrow(
      /ALERT_EMAIL_TO is required when ALERT_EMAIL_FROM is set/,
    );
    expect(() => loadConfig({ ALERT_EMAIL_TO: "soc@example.com" })).toThrow(
      /ALERT_EMAIL_FROM is required when ALERT_EMAIL_TO is set/,
    );
  });

  it("refuses a delivery deadline shorter than one attempt's timeout", () => {
    expect(() => loadConfig({ NOTIFY_TIMEOUT_MS: "5000", NOTIFY_DEADLINE_MS: "1000" })).toThrow(
      /NOTIFY_DEADLINE_MS must be at least NOTIFY_TIMEOUT_MS/,
    );
  });
});
