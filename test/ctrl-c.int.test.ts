/**
 * Ctrl-C in a terminal sends SIGINT to the whole foreground process group. `npm start` must
 * drain and stop everything itself — the reader first, then the runtime, then the throwaway
 * servers (which run in process groups of their own so the signal cannot kill them early) —
 * with nothing unhandled in any output or log.
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { spawnWatched } from "./process.ts";

const ROOT = join(import.meta.dirname, "..");

function refuses(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = createConnection({ host: hostname, port: Number(port) });
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

describe("npm start and Ctrl-C", () => {
  it("drains and stops every process and server on SIGINT to its process group, logging nothing unhandled", async () => {
    const logDir = mkdtempSync(join(tmpdir(), "waf-ctrl-c-"));
    const env: NodeJS.ProcessEnv = { ...process.env, WAF_LOG_DIR: logDir };
    for (const k of ["REDIS_URL", "INFLUXDB_URL", "INFLUXDB_API"]) delete env[k];
    const { child, output, exited } = spawnWatched(
      process.execPath,
      ["--import", "tsx", "local/start.ts", "--demo", "--view-port", "0"],
      { cwd: ROOT, env, detached: true },
    );
    const deadline = Date.now() + 60_000;
    while (!output().includes("Ctrl-C stops everything")) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`npm start did not come up:\n${output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Let demo records flow, so the drain has work in flight.
    await new Promise((r) => setTimeout(r, 2_000));
    const redisUrl = /Redis\s+(redis:\/\/\S+)/.exec(output())?.[1] as string;
    const influxUrl = /InfluxDB\s+(http:\/\/\S+)/.exec(output())?.[1] as string;
    // --demo runs the real WAF (nginx + ModSecurity) and waf ship in front (local/waf.ts).
    const wafUrl = /WAF\s+(http:\/\/\S+)/.exec(output())?.[1] as string;
    expect(redisUrl).toBeDefined();
    expect(wafUrl).toBeDefined();

    process.kill(-(child.pid as number), "SIGINT");
    expect(await exited).toBe(0);
    expect(output()).toContain("waf: stopped.");
    const logs = readdirSync(logDir).map((f) => readFileSync(join(logDir, f), "utf8"));
    for (const text of [output(), ...logs]) expect(text).not.toMatch(/unhandled/i);
    expect(await refuses(redisUrl)).toBe(true);
    expect(await refuses(influxUrl)).toBe(true);
    expect(await refuses(wafUrl)).toBe(true);
  });
});
