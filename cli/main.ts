/**
 * The `waf` command's composition root: reads config, dispatches subcommands.
 * Output goes to stdout; logs and errors to stderr.
 */
import { readFileSync } from "node:fs";
import { ConfigError, loadConfig } from "../core/config.ts";
import { scorerSettingsFrom } from "../core/scorer.ts";
import { openInput, scoreStream } from "./score.ts";

const USAGE = `usage: waf <command> [options]

commands:
  score [FILE]     score JSON-lines audit records (stdin when no FILE); one JSON line out per line
  help             this text

Configuration comes from the environment (see README: Configuration).`;

function readIpFile(path: string | undefined): string[] {
  if (!path) return [];
  return readFileSync(path, "utf8").split(/\r?\n/);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case "score": {
      const config = loadConfig(process.env);
      const settings = scorerSettingsFrom(config, {
        maliciousEntries: readIpFile(config.MALICIOUS_IPS_FILE),
      });
      const input = openInput(args[0]);
      const { scored, invalid } = await scoreStream(input, process.stdout, settings);
      process.stderr.write(`waf score: ${scored} scored, ${invalid} invalid\n`);
      return 0;
    }
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`waf: unknown command "${command}"\n${USAGE}\n`);
      return 2;
  }
}

process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  // `waf score | head` closes the pipe early; that is not an error worth a stack trace.
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`waf: ${err.message}\n`);
    else process.stderr.write(`waf: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = err instanceof ConfigError ? 2 : 1;
  },
);
