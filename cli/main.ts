/**
 * The `waf` command's composition root: runs one invocation with this process's streams and
 * environment (cli/run.ts), then exits with its code. Output goes to stdout; logs, progress and
 * errors to stderr.
 */
import { run } from "./run.ts";

process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  // `waf score | head` closes the pipe early; that is not an error worth a stack trace.
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

const argv = process.argv.slice(2);
const code = await run(argv, process.env, { stdout: process.stdout, stderr: process.stderr });
process.exitCode = code;
// Exit once stdout and stderr are written out: a lingering reconnect timer must not hang a
// one-shot command. `waf score` ends by itself (its stdin may still be open when piped).
if (argv[0] !== "score") {
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}
