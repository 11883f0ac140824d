/**
 * The `waf` command as a function: dispatches a subcommand and maps every failure to an exit
 * code and one line on stderr. `cli/main.ts` calls it with the process's streams; tests call it
 * in-process.
 *
 * Exit codes: 0 done; 1 failed; 2 bad usage or configuration; 3 Redis unreachable;
 * 130 interrupted.
 */
import { maskUrl } from "../core/lib/url.ts";
import { UsageError } from "./args.ts";
import type { Io } from "./commands.ts";
import { RedisUnreachableError } from "./errors.ts";

const USAGE = `usage: waf <command> [options]

commands:
  score [FILE]                 score JSON-lines audit records (stdin when no FILE, .gz too); one
                               JSON line out per line; no services needed
  score --report [FILE] [--labels FILE]
                               the level table of SCORING_PROFILE by blocked/passed, CRS rule
                               category and score against the threshold (--labels: JSON lines
                               with unique_id and kind, for a row per kind)
  replay FILE|DIR… [--rate N]  put every non-blank line on the stream, verbatim (.gz too;
         [--maxlen N]          a DIR means its .json/.jsonl/.ndjson/.log/.gz files; - is stdin)
  ship [--state FILE] PATH…   tail ModSecurity/Coraza JSON audit logs into the stream, at
                               least once, until stopped (PATH: a file, a quoted glob such as
                               '/var/log/modsec_audit.log*', or a Concurrent-log directory)
  alerts [--follow] [--level L[,L]] [--ip IP] [--rule ID] [--limit N] [--json]
                               the alert list, newest first; --follow prints new ones as they come
  dlq list [--reason R] [--limit N] [--json]
                               dead-lettered records, newest first (R: part of the reason)
  dlq show ID [--raw|--json]   one dead-lettered record with its reason (--raw: the record only)
  dlq redrive [ID…] [--reason R] [--limit N] [--dry-run]
                               move records back to the stream for the reader to process again
  status [--sample S] [--json] stream length, lag, pending per consumer, DLQ and alert list
                               sizes, throughput over S seconds (default 1)
  view [--port P] [--host H]   the live web view on http://127.0.0.1:P/ (default 8900)
  help                         this text

Configuration comes from the environment (REDIS_URL, STREAM_KEY, STREAM_FIELD, CONSUMER_GROUP,
DLQ_STREAM_KEY, ALERT_LIST_KEY…; see README: Configuration).
Exit codes: 0 done, 1 failed, 2 bad usage or configuration, 3 Redis unreachable, 130 interrupted.`;

async function dispatch(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const [command, ...args] = argv;
  const wantsHelp = args.includes("--help") || args.includes("-h");
  if (wantsHelp && command !== undefined && command !== "dlq") {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  switch (command) {
    // Each command loads its own modules: `waf --help` reads none of them (ioredis, zod, …).
    case "score": {
      const { scoreCommand } = await import("./score.ts");
      return scoreCommand(args, env, io);
    }
    case "replay":
    case "ship":
    case "alerts":
    case "dlq":
    case "status":
    case "view": {
      const [{ loadConfig }, commands] = await Promise.all([
        import("../core/config.ts"),
        import("./commands.ts"),
      ]);
      const handlers = {
        replay: commands.replayCommand,
        ship: commands.shipCommand,
        alerts: commands.alertsCommand,
        dlq: commands.dlqCommand,
        status: commands.statusCommand,
        view: commands.viewCommand,
      };
      return handlers[command](args, loadConfig(env), io);
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      io.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      io.stderr.write(`waf: unknown command "${command}"\n${USAGE}\n`);
      return 2;
  }
}

/** Runs one `waf` invocation; resolves with its exit code, never rejects. */
export async function run(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const command = argv[0] ?? "";
  try {
    return await dispatch(argv, env, io);
  } catch (err) {
    // By name: ConfigError lives beside the zod schema, which `--help` does not load.
    if ((err as Error)?.name === "ConfigError" || err instanceof UsageError) {
      io.stderr.write(`waf: ${(err as Error).message.replace(/^waf: /, "")}\n`);
      return 2;
    }
    if (err instanceof RedisUnreachableError) {
      io.stderr.write(
        `waf ${command}: ${err.message}\n  Is REDIS_URL right and the server up? On AWS, open the tunnel to the cluster first.\n`,
      );
      return 3;
    }
    // Whatever broke mid-command (a lost connection, a WRONGTYPE key) came from Redis.
    const message = err instanceof Error ? err.message : String(err);
    const redis = maskUrl(env.REDIS_URL?.trim() || "redis://localhost:6379");
    io.stderr.write(
      `waf ${command}: ${message}${message.includes("Redis") ? "" : ` (Redis ${redis})`}\n`,
    );
    if (env.WAF_DEBUG) io.stderr.write(`${(err as Error)?.stack ?? ""}\n`);
    return 1;
  }
}
