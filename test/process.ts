/**
 * A child process the tests watch as a terminal would: stdout and stderr gathered into one text.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";

export interface Watched {
  child: ChildProcess;
  /** Everything it printed so far, both streams interleaved. */
  output(): string;
  /** Its exit code once it exits (`exit`: the process, not its inherited pipes). */
  exited: Promise<number | null>;
  /** Its exit code once its output is complete too (`close`). */
  closed: Promise<number | null>;
}

export function spawnWatched(command: string, args: string[], options: SpawnOptions): Watched {
  const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const gather = (chunk: Buffer) => {
    out += chunk.toString();
  };
  child.stdout?.on("data", gather);
  child.stderr?.on("data", gather);
  return {
    child,
    output: () => out,
    exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
    closed: new Promise((resolve) => child.once("close", (code) => resolve(code))),
  };
}
