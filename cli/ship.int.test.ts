/**
 * `waf ship` as an operator runs it (`node bin/waf.js ship …`) against a real Redis: exit codes,
 * start-up failure naming Redis, the health endpoint, a clean stop on SIGTERM, the checkpoint
 * lock.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type RunningService, startRedis } from "../local/services.ts";
import { corpusLines } from "../test/fixtures/records.ts";
import { spawnWatched } from "../test/process.ts";
import { until } from "../test/wait.ts";

const ROOT = join(import.meta.dirname, "..");
const RECORDS = corpusLines("crs3-pl1.jsonl.gz").slice(0, 20);

interface Proc {
  child: ChildProcess;
  out: () => string;
  exit: Promise<number | null>;
}

function waf(args: string[], env: Record<string, string>): Proc {
  const p = spawnWatched(process.execPath, ["bin/waf.js", ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "info", ...env },
  });
  return { child: p.child, out: p.output, exit: p.closed };
}

/** The JSON log lines printed so far, parsed. */
function logLines(p: Proc): Array<Record<string, unknown>> {
  return p
    .out()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

let server: RunningService;
let redis: Redis;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});
afterAll(async () => {
  await redis?.quit();
  await server?.stop();
});

describe("waf ship", () => {
  it("exits 2 with the usage when no PATH is given", async () => {
    const p = waf(["ship"], { REDIS_URL: server.url });
    expect(await p.exit).toBe(2);
    expect(p.out()).toMatch(/which audit logs\?.*PATH/);
  });

  it("exits 3 naming Redis (password masked) when Redis is unreachable at start-up", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "waf-ship-cli-"));
    const p = waf(["ship", "--state", join(dir, "s.json"), join(dir, "audit.log")], {
      REDIS_URL: `redis://:secret-pw@127.0.0.1:${port}`,
    });
    expect(await p.exit).toBe(3);
    expect(p.out()).toMatch(/cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1/);
    expect(p.out()).not.toContain("secret-pw");
  });

  it("ships, serves /healthz, refuses a second shipper on the same checkpoint, and stops cleanly on SIGTERM", async () => {
    const dir = mkdtempSync(join(tmpdir(), "waf-ship-cli-"));
    const log = join(dir, "audit.log");
    const state = join(dir, "state.json");
    writeFileSync(log, Buffer.concat(RECORDS.flatMap((r) => [r, Buffer.from("\n")])));
    const env = { REDIS_URL: server.url, STREAM_KEY: "cli-ship", SHIP_HEALTH_PORT: "0" };
    const p = waf(["ship", "--state", state, `${log}*`], env);
    try {
      const started = await until("the shipper to start", () =>
        logLines(p).find((l) => l.message === "shipping audit logs"),
      );
      await until("the records on the stream", async () => (await redis.xlen("cli-ship")) === 20);
      const health = await fetch(started.health as string);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({
        status: "ok",
        shipped: 20,
        lag_bytes: 0,
        errors: 0,
      });

      const second = waf(["ship", "--state", state, log], env);
      expect(await second.exit).toBe(2);
      expect(second.out()).toMatch(new RegExp(`another waf ship \\(pid ${p.child.pid}\\) uses`));
    } finally {
      p.child.kill("SIGTERM");
    }
    expect(await p.exit).toBe(0);
    expect(logLines(p).at(-1)).toMatchObject({ message: "stopped", shipped: 20 });
    expect(JSON.parse(readFileSync(state, "utf8")).files).toHaveLength(1);
  });

  it("only warns when its health port cannot be bound, and ships anyway", async () => {
    const busy: Server = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", () => resolve()));
    const port = (busy.address() as { port: number }).port;
    const dir = mkdtempSync(join(tmpdir(), "waf-ship-cli-"));
    const log = join(dir, "audit.log");
    writeFileSync(log, Buffer.concat([RECORDS[0] as Buffer, Buffer.from("\n")]));
    const p = waf(["ship", "--state", join(dir, "s.json"), log], {
      REDIS_URL: server.url,
      STREAM_KEY: "cli-ship-busy",
      SHIP_HEALTH_PORT: String(port),
    });
    try {
      await until(
        "the record on the stream",
        async () => (await redis.xlen("cli-ship-busy")) === 1,
      );
      expect(logLines(p).find((l) => l.level === "WARN")).toMatchObject({
        message: "health endpoint not started; shipping anyway",
        port,
      });
    } finally {
      p.child.kill("SIGTERM");
      busy.close();
    }
    expect(await p.exit).toBe(0);
  });
});
