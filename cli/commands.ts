/**
 * The `waf` subcommands that talk to Redis: option parsing, one connection, output. The
 * logic lives in the modules beside this one; this file only wires it to the terminal.
 * Results go to stdout, diagnostics (progress, counts of what was skipped, warnings) to stderr.
 */

import type { Writable } from "node:stream";
import type { Config } from "../core/config.ts";
import type { RedisClient } from "../core/lib/redis.ts";
import { sleep } from "../core/lib/time.ts";
import { DeadLetters } from "../core/stream/dlq.ts";
import type { StreamNames } from "../core/stream/keys.ts";
import { streamNames } from "../core/stream/keys.ts";
import { topologyOf } from "../functions/shared/runtime.ts";
import { startLiveView } from "../local/web/server.ts";
import {
  type AlertFilter,
  AlertFollower,
  type AlertRow,
  alertJson,
  alertTable,
  matches,
  newestAlerts,
} from "./alerts.ts";
import { intOption, parse, rateOption, UsageError } from "./args.ts";
import { dlqDetails, dlqTable } from "./dlq.ts";
import { clean, count, plural } from "./format.ts";
import { connectRedis, maskRedisUrl } from "./redis.ts";
import { collectSources, ReplayError, renderProgress, replay } from "./replay.ts";
import { formatReport, report, type StatusKeys, snapshot } from "./status.ts";

/** `waf ship`: the long-running log shipper (its own module: it is a service, not a one-shot). */
export { shipCommand } from "./ship.ts";

/** Where a command writes: the process's streams, or buffers in tests. */
export interface Io {
  stdout: Writable & { isTTY?: boolean; columns?: number };
  stderr: Writable & { isTTY?: boolean; columns?: number };
}

const out = (io: Io, text: string) => io.stdout.write(`${text}\n`);
const err = (io: Io, text: string) => io.stderr.write(`${text}\n`);

/** Resolves on the first SIGINT/SIGTERM; a second one exits at once. */
function interrupted(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onSignal = () => {
    if (ac.signal.aborted) process.exit(130);
    ac.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

async function withRedis<T>(
  config: Config,
  fn: (redis: RedisClient, names: StreamNames) => Promise<T>,
  persistent = false,
): Promise<T> {
  const redis = await connectRedis(config.REDIS_URL, { persistent, mode: config.REDIS_MODE });
  try {
    return await fn(redis, streamNames(config, topologyOf(config, redis)));
  } finally {
    redis.disconnect();
  }
}

export async function replayCommand(args: string[], config: Config, io: Io): Promise<number> {
  const { values, positionals } = parse("replay", args, {
    rate: { type: "string" },
    maxlen: { type: "string" },
  });
  const rate = rateOption("replay", "rate", values.rate);
  const maxLen = intOption("replay", "maxlen", values.maxlen);
  if (positionals.length === 0)
    throw new UsageError("waf replay: which FILE or DIR? (waf replay FILE|DIR… [--rate N])");
  const sources = await collectSources(positionals, (m) => err(io, `waf replay: ${m}`)).catch(
    (e: unknown) => {
      throw e instanceof ReplayError ? new UsageError(`waf replay: ${e.message}`) : e;
    },
  );
  return withRedis(config, async (redis, names) => {
    const stop = interrupted();
    const tty = Boolean(io.stderr.isTTY);
    let lastDraw = 0;
    try {
      const r = await replay(redis, sources, {
        shards: names.shards,
        field: config.STREAM_FIELD,
        rate,
        maxLen,
        signal: stop.signal,
        warn: (m) => err(io, `waf replay: ${m}`),
        onProgress: (p) => {
          const now = Date.now();
          if (!tty || now - lastDraw < 100) return;
          lastDraw = now;
          io.stderr.write(`\r\x1b[2K${renderProgress(p, now, io.stderr.columns ?? 80)}`);
        },
      });
      if (tty) io.stderr.write("\r\x1b[2K");
      const skipped = [
        r.blank ? plural(r.blank, "blank line") : "",
        r.oversize ? plural(r.oversize, "oversized line") : "",
      ].filter(Boolean);
      const secs = r.elapsedMs / 1000;
      out(
        io,
        `${r.aborted ? "interrupted: " : ""}replayed ${plural(r.sent, "record")} from ${plural(r.sources, "source")} to stream ${config.STREAM_KEY} in ${secs.toFixed(1)} s (${count(Math.round(r.sent / Math.max(secs, 0.001)))} records/s)${skipped.length ? `; skipped ${skipped.join(", ")}` : ""}`,
      );
      return r.aborted ? 130 : 0;
    } catch (e) {
      if (tty) io.stderr.write("\r\x1b[2K");
      if (e instanceof ReplayError) {
        err(
          io,
          `waf replay: ${e.message}; ${plural(e.sent, "record")} had been added to ${config.STREAM_KEY} (Redis ${maskRedisUrl(config.REDIS_URL)})`,
        );
        return 1;
      }
      throw e;
    } finally {
      stop.dispose();
    }
  });
}

function alertFilter(values: { level?: string; ip?: string; rule?: string }): AlertFilter {
  const levels = (values.level ?? "")
    .split(",")
    .map((l) => l.trim().toLowerCase())
    .filter(Boolean);
  const known = ["critical", "high", "medium", "low"];
  const bad = levels.find((l) => !known.includes(l));
  if (bad !== undefined)
    throw new UsageError(`waf alerts: --level must be one of ${known.join(", ")} (got "${bad}")`);
  return { levels, ip: values.ip, rule: values.rule };
}

export async function alertsCommand(args: string[], config: Config, io: Io): Promise<number> {
  const { values, positionals } = parse("alerts", args, {
    follow: { type: "boolean", short: "f" },
    level: { type: "string" },
    ip: { type: "string" },
    rule: { type: "string" },
    limit: { type: "string", short: "n" },
    json: { type: "boolean" },
    interval: { type: "string" },
  });
  if (positionals.length > 0)
    throw new UsageError(`waf alerts: unexpected argument "${positionals[0]}"`);
  const filter = alertFilter(values);
  const limit = intOption("alerts", "limit", values.limit) ?? 20;
  const intervalMs = (rateOption("alerts", "interval", values.interval) ?? 1) * 1000;
  const show = (alerts: AlertRow[], header: boolean) => {
    if (alerts.length === 0) return;
    if (values.json) for (const a of alerts) out(io, alertJson(a));
    else {
      const t = alertTable(alerts);
      out(io, header ? t : t.slice(t.indexOf("\n") + 1));
    }
  };
  return withRedis(
    config,
    async (redis) => {
      const { alerts, total, unreadable } = await newestAlerts(
        redis,
        config.ALERT_LIST_KEY,
        filter,
        limit,
      );
      if (unreadable > 0)
        err(io, `waf alerts: ${plural(unreadable, "entry", "entries")} not JSON, skipped`);
      if (!values.follow) {
        if (alerts.length === 0) {
          err(
            io,
            `no alerts${total > 0 ? " match" : ""} in ${config.ALERT_LIST_KEY} (${plural(total, "alert")} listed)`,
          );
          return 0;
        }
        show(alerts, true);
        err(
          io,
          `${plural(alerts.length, "alert")} shown, newest first (${count(total)} in ${config.ALERT_LIST_KEY}${alerts.length === limit ? "; --limit N for more" : ""})`,
        );
        return 0;
      }
      // Follow: the newest ones oldest first, then each new one as it is listed.
      const stop = interrupted();
      try {
        const follower = new AlertFollower(redis, config.ALERT_LIST_KEY);
        const initial = [...alerts].reverse();
        follower.markSeen(initial);
        // Alerts filtered out must not come back as "new" either.
        follower.markSeen(
          (await newestAlerts(redis, config.ALERT_LIST_KEY, { levels: [] }, 1000)).alerts,
        );
        show(initial, true);
        let header = initial.length === 0;
        err(io, `following ${config.ALERT_LIST_KEY} (Ctrl-C to stop)…`);
        let failing = false;
        while (!stop.signal.aborted) {
          await sleep(intervalMs, stop.signal);
          if (stop.signal.aborted) break;
          try {
            const fresh = (await follower.poll()).filter((a) => matches(a, filter));
            if (failing) err(io, "waf alerts: Redis is back");
            failing = false;
            show(fresh, header);
            if (fresh.length > 0) header = false;
          } catch (e) {
            if (!failing)
              err(
                io,
                `waf alerts: Redis ${maskRedisUrl(config.REDIS_URL)} not answering (${(e as Error).message}); retrying…`,
              );
            failing = true;
          }
        }
        return 0;
      } finally {
        stop.dispose();
      }
    },
    Boolean(values.follow),
  );
}

const DLQ_USAGE =
  "usage: waf dlq list [--reason R] [--limit N] [--json] | waf dlq show ID [--raw|--json] | waf dlq redrive [ID…] [--reason R] [--limit N] [--dry-run]";

function checkIds(ids: string[]): void {
  const bad = ids.find((id) => !/^\d+-\d+$/.test(id));
  if (bad !== undefined)
    throw new UsageError(`waf dlq: "${bad}" is not a stream entry ID (like 1718000000000-0)`);
}

export async function dlqCommand(args: string[], config: Config, io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const field = config.STREAM_FIELD;
  switch (sub) {
    case "list": {
      const { values, positionals } = parse("dlq list", rest, {
        reason: { type: "string" },
        limit: { type: "string", short: "n" },
        json: { type: "boolean" },
      });
      if (positionals.length > 0)
        throw new UsageError(`waf dlq list: unexpected argument "${positionals[0]}"`);
      const limit = intOption("dlq list", "limit", values.limit) ?? 20;
      return withRedis(config, async (redis, names) => {
        const { entries, total } = await new DeadLetters(redis, names).list(
          { reason: values.reason },
          limit,
        );
        if (entries.length === 0) {
          err(
            io,
            `no dead-lettered records${values.reason ? ` with a reason containing "${clean(values.reason)}"` : ""} in ${config.DLQ_STREAM_KEY} (${plural(total, "entry", "entries")})`,
          );
          return 0;
        }
        if (values.json)
          for (const e of entries) out(io, JSON.stringify({ id: e.id, ...e.fields }));
        else out(io, dlqTable(entries, field));
        err(
          io,
          `${plural(entries.length, "entry", "entries")} shown, newest first (${count(total)} in ${config.DLQ_STREAM_KEY}); details: waf dlq show ID`,
        );
        return 0;
      });
    }
    case "show": {
      const { values, positionals } = parse("dlq show", rest, {
        raw: { type: "boolean" },
        json: { type: "boolean" },
      });
      if (positionals.length !== 1) throw new UsageError("waf dlq show: give one DLQ entry ID");
      checkIds(positionals);
      const id = positionals[0] as string;
      return withRedis(config, async (redis, names) => {
        const dlq = new DeadLetters(redis, names);
        const e = await dlq.get(id);
        if (!e) {
          err(
            io,
            `waf dlq show: no entry ${id} in ${config.DLQ_STREAM_KEY} (waf dlq list shows the IDs)`,
          );
          return 1;
        }
        if (values.raw) {
          const record = e.fields[field];
          if (record === undefined) {
            err(io, `waf dlq show: entry ${id} holds no record ("${field}" field)`);
            return 1;
          }
          // Verbatim, for piping into `waf score` or a file: the bytes as stored.
          const raw = await dlq.rawRecord(id);
          if (raw) io.stdout.write(Buffer.concat([raw, Buffer.from("\n")]));
          return 0;
        }
        out(io, values.json ? JSON.stringify({ id: e.id, ...e.fields }) : dlqDetails(e, field));
        return 0;
      });
    }
    case "redrive": {
      const { values, positionals } = parse("dlq redrive", rest, {
        reason: { type: "string" },
        limit: { type: "string", short: "n" },
        "dry-run": { type: "boolean" },
      });
      checkIds(positionals);
      const limit = intOption("dlq redrive", "limit", values.limit);
      const dryRun = Boolean(values["dry-run"]);
      return withRedis(config, async (redis, names) => {
        const shown: string[] = [];
        const dlq = new DeadLetters(redis, names);
        const r = await dlq.redrive({
          filter: { reason: values.reason },
          ids: positionals.length > 0 ? positionals : undefined,
          limit,
          dryRun,
          onEntry: (e) => {
            if (dryRun) shown.push(e.id);
          },
        });
        if (dryRun && shown.length > 0) {
          const entries = await Promise.all(shown.slice(0, 50).map((id) => dlq.get(id)));
          out(
            io,
            dlqTable(
              entries.filter((e) => e !== undefined),
              field,
            ),
          );
          if (shown.length > 50) out(io, `… and ${count(shown.length - 50)} more`);
        }
        const notes = [
          r.noRecord
            ? `${plural(r.noRecord, "entry", "entries")} without a record left in place`
            : "",
          r.gone ? `${count(r.gone)} already gone (redriven concurrently)` : "",
          r.missing.length ? `not in the DLQ: ${r.missing.join(", ")}` : "",
        ].filter(Boolean);
        out(
          io,
          `${dryRun ? "dry run: would redrive" : "redrove"} ${plural(r.redriven, "record")} from ${config.DLQ_STREAM_KEY} to ${config.STREAM_KEY}${notes.length ? `; ${notes.join("; ")}` : ""}`,
        );
        return r.missing.length > 0 ? 1 : 0;
      });
    }
    default:
      if (sub === undefined || sub === "help" || sub === "--help") {
        out(io, DLQ_USAGE);
        return sub === undefined ? 2 : 0;
      }
      throw new UsageError(`waf dlq: unknown subcommand "${sub}"\n${DLQ_USAGE}`);
  }
}

export function statusKeys(config: Config, names: StreamNames): StatusKeys {
  return {
    names,
    alertListKey: config.ALERT_LIST_KEY,
    claimIdleMs: config.CLAIM_IDLE_MS,
  };
}

export async function statusCommand(args: string[], config: Config, io: Io): Promise<number> {
  const { values, positionals } = parse("status", args, {
    sample: { type: "string" },
    json: { type: "boolean" },
  });
  if (positionals.length > 0)
    throw new UsageError(`waf status: unexpected argument "${positionals[0]}"`);
  const sampleS = values.sample === undefined ? 1 : Number(values.sample);
  if (!Number.isFinite(sampleS) || sampleS < 0 || sampleS > 60)
    throw new UsageError(
      `waf status: --sample must be seconds between 0 and 60 (got "${values.sample}")`,
    );
  return withRedis(config, async (redis, names) => {
    const keys = statusKeys(config, names);
    const first = await snapshot(redis, keys);
    let last = first;
    if (sampleS > 0) {
      const stop = interrupted();
      try {
        await sleep(sampleS * 1000, stop.signal);
      } finally {
        stop.dispose();
      }
      last = await snapshot(redis, keys);
    }
    const r = report(first, last, keys, maskRedisUrl(config.REDIS_URL));
    out(io, values.json ? JSON.stringify(r) : formatReport(r));
    return 0;
  });
}

export async function viewCommand(args: string[], config: Config, io: Io): Promise<number> {
  const { values, positionals } = parse("view", args, {
    port: { type: "string", short: "p" },
    host: { type: "string" },
    interval: { type: "string" },
  });
  if (positionals.length > 0)
    throw new UsageError(`waf view: unexpected argument "${positionals[0]}"`);
  const port = intOption("view", "port", values.port, 0) ?? 8900;
  if (port > 65_535) throw new UsageError("waf view: --port must be at most 65535");
  const intervalMs = (rateOption("view", "interval", values.interval) ?? 2) * 1000;
  const redis = await connectRedis(config.REDIS_URL, { persistent: true });
  const stop = interrupted();
  try {
    const view = await startLiveView({
      redis,
      redisLabel: maskRedisUrl(config.REDIS_URL),
      names: streamNames(config),
      alertListKey: config.ALERT_LIST_KEY,
      host: values.host,
      port,
      intervalMs,
    }).catch((e: NodeJS.ErrnoException) => {
      throw e.code === "EADDRINUSE"
        ? new UsageError(`waf view: port ${port} is in use; pick another with --port`)
        : e;
    });
    out(io, `live view on ${view.url} (Redis ${maskRedisUrl(config.REDIS_URL)}); Ctrl-C stops it`);
    await new Promise<void>((resolve) => stop.signal.addEventListener("abort", () => resolve()));
    await view.close();
    return 0;
  } finally {
    stop.dispose();
    redis.disconnect();
  }
}
