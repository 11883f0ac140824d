/**
 * `waf status`: the pipeline's state in words an operator reads at 3 a.m. (reference §7): stream
 * length, consumer-group lag, pending entries per consumer with idle time, DLQ size, alert list
 * size, and recent throughput from two samples taken a moment apart; then what looks wrong.
 */
import { alertListSummary } from "../core/alert/alert-list.ts";
import type { RedisClient } from "../core/lib/redis.ts";
import type { StreamNames } from "../core/stream/keys.ts";
import { type ShardedStatus, shardedStatus, streamActivity } from "../core/stream/status.ts";
import { clean, count, duration, plural } from "./format.ts";

export interface StatusKeys {
  names: StreamNames;
  alertListKey: string;
  /** CLAIM_IDLE_MS: a consumer idle longer than this with pending entries is probably dead. */
  claimIdleMs: number;
}

export interface Snapshot {
  /** Redis server time, ms. */
  at: number;
  stream: ShardedStatus;
  /** XINFO STREAM entries-added (Redis 7+); undefined before. */
  entriesAdded: number | undefined;
  /** Time of the newest entry ever added (from last-generated-id), ms. */
  lastAddedMs: number | undefined;
  alertListLength: number;
  /** listed_at of the newest alert, unix seconds. */
  newestAlertAt: number | undefined;
  /** failed_at of the newest DLQ entry (ISO) and its reason. */
  newestDlq: { at: string; reason: string } | undefined;
  redisVersion: string | undefined;
}

export interface StatusReport {
  redisUrl: string;
  redisVersion: string | undefined;
  stream: {
    key: string;
    length: number;
    lastAddedAgoMs: number | undefined;
  };
  group: {
    name: string;
    exists: boolean;
    lag: number | undefined;
    pending: number;
    consumers: Array<{ name: string; pending: number; idleMs: number }>;
  };
  throughput: {
    sampleMs: number;
    /** Entries added to the stream per second. */
    arrivingPerS: number | undefined;
    /** Entries the group read (delivered for the first time) per second. */
    readPerS: number | undefined;
    /** Entries the group finished (read and acknowledged) per second. */
    donePerS: number | undefined;
  };
  dlq: { key: string; length: number; newest: { at: string; reason: string } | undefined };
  alerts: { key: string; length: number; newestAgoMs: number | undefined };
  /** Each shard of the stream (one unless STREAM_SHARDS > 1); the figures above are totals. */
  shards: Array<{
    index: number;
    stream: string;
    dlq: string;
    length: number;
    lag: number | undefined;
    pending: number;
    dlqLength: number;
  }>;
  warnings: string[];
}

/** One sample: a handful of commands per shard, in parallel. */
export async function snapshot(redis: RedisClient, k: StatusKeys): Promise<Snapshot> {
  const [stream, activities, alerts] = await Promise.all([
    shardedStatus(redis, k.names, { withConsumers: true }),
    Promise.all(k.names.shards.map((shard) => streamActivity(redis, shard))),
    alertListSummary(redis, k.alertListKey),
  ]);
  const added = activities.map((a) => a.entriesAdded);
  const newestDlq = activities
    .map((a) => a.newestDlq)
    .filter((d) => d !== undefined)
    .sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0))[0];
  const lastAdded = activities.map((a) => a.lastAddedMs).filter((t) => t !== undefined);
  return {
    at: activities[0]?.serverTimeMs ?? Date.now(),
    stream,
    entriesAdded: added.every((n) => n !== undefined)
      ? added.reduce((n, a) => n + (a ?? 0), 0)
      : undefined,
    lastAddedMs: lastAdded.length > 0 ? Math.max(...lastAdded) : undefined,
    alertListLength: alerts.length,
    newestAlertAt: alerts.newestListedAt,
    newestDlq,
    redisVersion: activities[0]?.redisVersion,
  };
}

const perSecond = (a: number | undefined, b: number | undefined, ms: number) =>
  a === undefined || b === undefined || ms <= 0 ? undefined : Math.max(0, ((b - a) * 1000) / ms);

/** The report from a first and a last sample (the same one when no sampling was asked for). */
export function report(
  first: Snapshot,
  last: Snapshot,
  k: StatusKeys,
  redisUrl: string,
): StatusReport {
  const s = last.stream;
  const ms = last.at - first.at;
  const arriving = perSecond(
    first.entriesAdded ?? first.stream.length,
    last.entriesAdded ?? last.stream.length,
    ms,
  );
  const done = (x: Snapshot) => x.stream.entriesRead - x.stream.pending;
  const r: StatusReport = {
    redisUrl,
    redisVersion: last.redisVersion,
    stream: {
      key: k.names.stream,
      length: s.length,
      lastAddedAgoMs: last.lastAddedMs === undefined ? undefined : last.at - last.lastAddedMs,
    },
    group: {
      name: k.names.group,
      exists: s.groupExists,
      lag: s.lag,
      pending: s.pending,
      consumers: s.consumers,
    },
    throughput: {
      sampleMs: ms,
      arrivingPerS: arriving,
      readPerS: perSecond(first.stream.entriesRead, last.stream.entriesRead, ms),
      donePerS: perSecond(done(first), done(last), ms),
    },
    dlq: { key: k.names.dlq, length: s.dlqLength, newest: last.newestDlq },
    alerts: {
      key: k.alertListKey,
      length: last.alertListLength,
      newestAgoMs:
        last.newestAlertAt === undefined ? undefined : last.at - last.newestAlertAt * 1000,
    },
    shards: s.shards.map((x) => ({
      index: x.index,
      stream: x.stream,
      dlq: x.dlq,
      length: x.length,
      lag: x.lag,
      pending: x.pending,
      dlqLength: x.dlqLength,
    })),
    warnings: [],
  };
  r.warnings = warningsOf(r, first, k);
  return r;
}

function warningsOf(r: StatusReport, first: Snapshot, k: StatusKeys): string[] {
  const w: string[] = [];
  const g = r.group;
  if (!g.exists) {
    if (r.stream.length > 0)
      w.push(
        `consumer group "${clean(g.name)}" does not exist: no reader has started on this stream (or CONSUMER_GROUP differs). Start one: npm start, or the Fargate service.`,
      );
    return w;
  }
  if (g.consumers.length === 0)
    w.push("the group has no consumers: no reader has ever read from it.");
  const lag = g.lag ?? 0;
  const sampled = r.throughput.sampleMs > 0;
  if (lag > 0 && sampled && (r.throughput.readPerS ?? 0) === 0)
    w.push(
      `${plural(lag, "entry", "entries")} waiting and none read while sampling: is a reader running? Check its /healthz and logs (npm start -- --logs).`,
    );
  else if (
    sampled &&
    first.stream.lag !== undefined &&
    g.lag !== undefined &&
    g.lag > first.stream.lag
  )
    w.push(
      `lag grew from ${count(first.stream.lag)} to ${count(g.lag)} while sampling: entries arrive faster than they are processed (more reader tasks, MAX_IN_FLIGHT, BATCH_SIZE; see docs/troubleshooting.md).`,
    );
  for (const c of g.consumers) {
    if (c.pending > 0 && c.idleMs > k.claimIdleMs)
      w.push(
        `consumer "${clean(c.name)}" holds ${plural(c.pending, "pending entry", "pending entries")} and has been idle ${duration(c.idleMs)}: probably dead; a running reader claims them (CLAIM_IDLE_MS ${duration(k.claimIdleMs)}).`,
      );
  }
  if (r.dlq.length > 0)
    w.push(
      `${plural(r.dlq.length, "record")} dead-lettered: see why with waf dlq list, resend with waf dlq redrive.`,
    );
  return w;
}

const ago = (ms: number | undefined) => (ms === undefined ? "" : `, ${duration(ms)} ago`);
const rate = (v: number | undefined) =>
  v === undefined ? "unknown" : `${v < 10 && v > 0 ? v.toFixed(1) : count(Math.round(v))}/s`;

/** The report in words. */
export function formatReport(r: StatusReport): string {
  const out: string[] = [];
  out.push(`Redis ${r.redisUrl}${r.redisVersion ? ` (Redis ${clean(r.redisVersion)})` : ""}`);
  out.push(
    `Stream ${clean(r.stream.key)}: ${plural(r.stream.length, "entry", "entries")}${r.stream.lastAddedAgoMs === undefined ? ", nothing ever added" : `, newest added ${duration(r.stream.lastAddedAgoMs)} ago`}`,
  );
  const g = r.group;
  if (!g.exists) out.push(`Consumer group ${clean(g.name)}: not created yet`);
  else {
    out.push(
      `Consumer group ${clean(g.name)}: lag ${g.lag === undefined ? "unknown (entries were deleted or trimmed)" : `${plural(g.lag, "entry", "entries")} not yet read`}, ${plural(g.pending, "entry", "entries")} pending (read, not yet acknowledged)`,
    );
    if (g.consumers.length === 0) out.push("  no consumers");
    for (const c of [...g.consumers].sort((a, b) => b.pending - a.pending))
      out.push(
        `  consumer ${clean(c.name)}: ${count(c.pending)} pending, idle ${duration(c.idleMs)}`,
      );
  }
  const t = r.throughput;
  out.push(
    t.sampleMs > 0
      ? `Throughput over ${duration(t.sampleMs)}: ${rate(t.arrivingPerS)} arriving, ${rate(t.readPerS)} read, ${rate(t.donePerS)} done (acknowledged)`
      : "Throughput: not sampled (--sample 0)",
  );
  if (r.shards.length > 1) {
    out.push(`Shards (${r.shards.length}; the figures above are totals, order holds per shard):`);
    for (const x of r.shards)
      out.push(
        `  ${clean(x.stream)}: ${count(x.length)} entries, lag ${x.lag === undefined ? "unknown" : count(x.lag)}, ${count(x.pending)} pending, ${count(x.dlqLength)} dead-lettered`,
      );
  }
  out.push(
    `Dead-letter stream ${clean(r.dlq.key)}: ${plural(r.dlq.length, "entry", "entries")}${r.dlq.newest ? `, newest at ${clean(r.dlq.newest.at)}: ${clean(r.dlq.newest.reason).slice(0, 120)}` : ""}`,
  );
  out.push(
    `Alert list ${clean(r.alerts.key)}: ${plural(r.alerts.length, "alert")}${r.alerts.length > 0 ? ago(r.alerts.newestAgoMs).replace(", ", ", newest listed ") : ""}`,
  );
  if (r.warnings.length === 0) out.push("OK: nothing looks wrong.");
  else for (const w of r.warnings) out.push(`! ${w}`);
  return out.join("\n");
}
