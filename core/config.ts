/**
 * Every environment variable of reference §6, validated by one zod schema at start-up.
 * A bad value stops the process with a message naming the variable.
 */
import { z } from "zod";
import { IpSet } from "./event/ip.ts";
import { DEFAULT_WEIGHTS } from "./scoring/categories.ts";
import { PROFILES } from "./scoring/score.ts";

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`invalid configuration: ${variable} ${detail}`);
    this.name = "ConfigError";
  }
}

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .trim()
    .regex(/^-?\d+$/, { error: "must be an integer" })
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .optional()
    .transform((v) => v ?? def);

const str = (def: string) =>
  z
    .string()
    .trim()
    .min(1, { error: "must not be empty" })
    .optional()
    .transform((v) => v ?? def);

const optStr = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? undefined : v.trim()));

const url = <D extends string | undefined = undefined>(protocols: RegExp, def?: D) =>
  z
    .string()
    .trim()
    .refine(
      (v) => {
        try {
          return protocols.test(new URL(v).protocol);
        } catch {
          return false;
        }
      },
      { error: `must be a URL (${protocols.source.replace(/[\^$]/g, "")})` },
    )
    .optional()
    .transform((v): string | D => v ?? (def as D));

/** The non-empty, trimmed items of a comma-separated list. */
function commaItems(v: string | undefined): string[] {
  return (v ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

const ipList = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const entries = commaItems(v);
    try {
      IpSet.parse(entries);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
      return z.NEVER;
    }
    return entries;
  });

const EMAIL = /^(?:[^<>\r\n]*<[^\s@<>]+@[^\s@<>]+>|[^\s@<>]+@[^\s@<>]+)$/;

const email = z
  .string()
  .trim()
  .regex(EMAIL, { error: "must be an email address (or Name <address>)" })
  .optional();

const emailList = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const entries = commaItems(v);
    const bad = entries.find((e) => !EMAIL.test(e));
    if (bad !== undefined) {
      ctx.addIssue({
        code: "custom",
        message: `must be comma-separated email addresses (got ${JSON.stringify(bad.slice(0, 40))})`,
      });
      return z.NEVER;
    }
    return entries;
  });

const weights = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v.trim() === "") return { ...DEFAULT_WEIGHTS };
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      ctx.addIssue({ code: "custom", message: 'must be a JSON object like {"942":30,"941":25}' });
      return z.NEVER;
    }
    // zod skips a "__proto__" key silently; refuse it (and any other odd key) by name instead.
    const badKey =
      parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
        ? Object.keys(parsed).find((k) => !/^\d{3}$/.test(k))
        : undefined;
    if (badKey !== undefined) {
      ctx.addIssue({
        code: "custom",
        message: `keys must be three-digit CRS prefixes (got ${JSON.stringify(badKey.slice(0, 20))})`,
      });
      return z.NEVER;
    }
    const r = z
      .record(
        z.string().regex(/^\d{3}$/, { error: "keys must be three-digit CRS prefixes" }),
        z.number().int().min(-1_000_000).max(1_000_000),
      )
      .safeParse(parsed);
    if (!r.success) {
      ctx.addIssue({
        code: "custom",
        message: `must be a JSON object from three-digit prefix to integer points (${r.error.issues[0]?.message})`,
      });
      return z.NEVER;
    }
    // A null-prototype copy: keys like "__proto__" cannot reach Object.prototype.
    return Object.assign(Object.create(null), r.data) as Record<string, number>;
  });

const thresholds = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const parts = (v ?? "80,60,40").split(",").map((s) => s.trim());
    const nums = parts.map(Number);
    if (
      parts.length !== 3 ||
      nums.some((n, i) => !/^-?\d+$/.test(parts[i] ?? "") || !Number.isSafeInteger(n))
    ) {
      ctx.addIssue({
        code: "custom",
        message: "must be three integers: critical,high,medium (e.g. 80,60,40)",
      });
      return z.NEVER;
    }
    const [critical, high, medium] = nums as [number, number, number];
    if (!(critical > high && high > medium)) {
      ctx.addIssue({
        code: "custom",
        message: "must be strictly decreasing: critical > high > medium",
      });
      return z.NEVER;
    }
    return { critical, high, medium };
  });

/** The schema: keys are the variable names, so every issue names its variable. */
export const configSchema = z
  .object({
    REDIS_URL: url(/^rediss?:$/, "redis://localhost:6379"),
    INFLUXDB_URL: url(/^https?:$/, "http://localhost:8086"),
    INFLUXDB_TOKEN: optStr,
    INFLUXDB_ORG: str("waf-org"),
    INFLUXDB_BUCKET: str("waf-realtime"),
    INFLUXDB_API: z
      .enum(["v2", "v1"], { error: "must be v2 or v1" })
      .optional()
      .transform((v) => v ?? "v2"),
    LOG_LEVEL: z
      .string()
      .optional()
      .transform((v) => (v ?? "info").toLowerCase())
      .pipe(
        z.enum(["trace", "debug", "info", "warn", "error", "silent", "critical"], {
          error: "must be one of trace, debug, info, warn, error, critical, silent",
        }),
      ),
    /** Unset: detected at start-up (`INFO cluster`); set to override. */
    REDIS_MODE: z.enum(["single", "cluster"], { error: "must be single or cluster" }).optional(),
    /** Keys one logical stream is spread over (1: the stream key alone, as always). */
    STREAM_SHARDS: int(1, 1, 64),
    STREAM_KEY: str("waf-realtime"),
    STREAM_FIELD: str("event"),
    CONSUMER_GROUP: str("realtime-processor"),
    /** Unset: the reader names itself host-pid (functions/reader/main.ts). */
    CONSUMER_NAME: z.string().trim().min(1, { error: "must not be empty" }).optional(),
    BATCH_SIZE: int(100, 1, 10_000),
    BATCH_WINDOW_MS: int(50, 0, 60_000),
    MAX_IN_FLIGHT: int(4, 1, 1000),
    MAX_RETRIES: int(5, 0, 100),
    CLAIM_IDLE_MS: int(60_000, 1000),
    DLQ_STREAM_KEY: str("waf-realtime:dlq"),
    DLQ_MAXLEN: int(100_000, 1),
    MAX_RECORD_BYTES: int(1_048_576, 256, 5 * 1024 * 1024),
    SCORING_WEIGHTS: weights,
    SEVERITY_THRESHOLDS: thresholds,
    /** `seed` (reference §3 formula) or `crs` (severity from what a real CRS record says happened). */
    SCORING_PROFILE: z
      .string()
      .optional()
      .transform((v) => (v ?? "seed").trim().toLowerCase())
      .pipe(z.enum(PROFILES, { error: "must be seed or crs" })),
    /** Campaign alerts: the processing-time window per client, in seconds. */
    CAMPAIGN_WINDOW_S: int(300, 1, 86_400),
    /**
     * Campaign alerts: valid events of one client in a window that raise one; 0 turns them off.
     * Bounded: each counted transaction is remembered (in Redis) until the window fires.
     */
    CAMPAIGN_MIN_EVENTS: int(20, 0, 10_000),
    MALICIOUS_IPS: ipList,
    MALICIOUS_IPS_FILE: optStr,
    ALLOWLIST_IPS: ipList,
    REPUTATION_SET_KEY: optStr,
    REPEAT_OFFENDER_THRESHOLD: int(0, 0),
    REPEAT_OFFENDER_WINDOW_S: int(300, 1),
    /** How long a repeat offender stays malicious once it crossed the threshold. */
    REPEAT_OFFENDER_TTL_S: int(3600, 1),
    /** How often the scorer reloads the reputation set and repeat offenders into memory. */
    REPUTATION_REFRESH_S: int(30, 1, 86_400),
    /**
     * How the point carries the client address: `tag` (the default schema) or `field`, with a
     * bounded `client_net` tag (IPv4 /24, IPv6 /48) so no attacker can grow the series count.
     */
    INFLUX_IP_AS: z
      .enum(["tag", "field"], { error: "must be tag or field" })
      .optional()
      .transform((v) => v ?? "tag"),
    IP_MASKING: z
      .enum(["off", "truncate", "hash"], { error: "must be off, truncate or hash" })
      .optional()
      .transform((v) => v ?? "off"),
    IP_HASH_KEY: optStr,
    ALERT_LIST_KEY: str("waf-alerts"),
    ALERT_LIST_MAX: int(10_000, 1),
    ALERT_LIST_TTL_S: int(604_800, 1),
    ALERT_THROTTLE_S: int(300, 0),
    /**
     * Notifications one channel sends a minute at most, whatever the clients; what it holds back
     * is counted into one summary. 0 turns the cap off.
     */
    ALERT_CHANNEL_RATE_PER_MIN: int(60, 0, 100_000),
    PAGERDUTY_MIN_SEVERITY: int(90, 0),
    SLACK_MIN_SEVERITY: int(80, 0),
    WEBHOOK_MIN_SEVERITY: int(80, 0),
    EMAIL_MIN_SEVERITY: int(90, 0),
    SLACK_WEBHOOK_URL: url(/^https?:$/),
    PAGERDUTY_ROUTING_KEY: optStr,
    PAGERDUTY_EVENTS_URL: url(/^https?:$/, "https://events.pagerduty.com/v2/enqueue"),
    ALERT_WEBHOOK_URL: url(/^https?:$/),
    ALERT_WEBHOOK_SECRET: optStr,
    /** Email through Amazon SES v2: on when both are set (the sender must be SES-verified). */
    ALERT_EMAIL_FROM: email,
    ALERT_EMAIL_TO: emailList,
    /** One notification HTTP request (or SES call) gives up after this long. */
    NOTIFY_TIMEOUT_MS: int(3000, 100, 60_000),
    /** All of one invocation's deliveries on a channel, retries included, end within this. */
    NOTIFY_DEADLINE_MS: int(10_000, 100, 600_000),
    SCORER_FUNCTION: optStr,
    ALERT_FUNCTION: optStr,
    HEALTH_PORT: int(8080, 0, 65_535),
    /** How long the reader drains in-flight batches after SIGTERM (ECS stopTimeout must exceed it). */
    DRAIN_TIMEOUT_MS: int(25_000, 0, 600_000),
    /** `waf ship`: XADD … MAXLEN ~ N, the producer's approximate trim of the stream. */
    SHIP_MAXLEN: int(1_000_000, 1),
    /** `waf ship`: port of its `/healthz` (127.0.0.1); unset = no health endpoint. */
    SHIP_HEALTH_PORT: z
      .string()
      .trim()
      .regex(/^\d+$/, { error: "must be a port number (0-65535)" })
      .transform(Number)
      .pipe(
        z
          .number()
          .int()
          .min(0, { error: "must be a port number (0-65535)" })
          .max(65_535, { error: "must be a port number (0-65535)" }),
      )
      .optional(),
  })
  .superRefine((c, ctx) => {
    if (c.ALERT_EMAIL_FROM && c.ALERT_EMAIL_TO.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["ALERT_EMAIL_TO"],
        message: "is required when ALERT_EMAIL_FROM is set",
      });
    }
    if (!c.ALERT_EMAIL_FROM && c.ALERT_EMAIL_TO.length > 0) {
      ctx.addIssue({
        code: "custom",
        path: ["ALERT_EMAIL_FROM"],
        message: "is required when ALERT_EMAIL_TO is set",
      });
    }
    if (c.NOTIFY_DEADLINE_MS < c.NOTIFY_TIMEOUT_MS) {
      ctx.addIssue({
        code: "custom",
        path: ["NOTIFY_DEADLINE_MS"],
        message: "must be at least NOTIFY_TIMEOUT_MS",
      });
    }
    if (c.IP_MASKING === "hash" && !c.IP_HASH_KEY) {
      ctx.addIssue({
        code: "custom",
        path: ["IP_HASH_KEY"],
        message: "is required when IP_MASKING=hash",
      });
    }
  });

export type Config = z.output<typeof configSchema>;

/**
 * Validates the environment. Blank values count as unset.
 * @throws ConfigError naming the first bad variable (all of them in the message).
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const input: Record<string, string | undefined> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const v = env[key];
    input[key] = v === undefined || v.trim() === "" ? undefined : v;
  }
  const r = configSchema.safeParse(input);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${String(i.path[0] ?? "config")} ${i.message}`);
  const first = r.error.issues[0];
  const err = new ConfigError(String(first?.path[0] ?? "config"), first?.message ?? "is invalid");
  if (issues.length > 1) err.message = `invalid configuration: ${issues.join("; ")}`;
  throw err;
}
