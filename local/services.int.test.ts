import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { influxQuery, influxRows, victoriaPoints, victoriaSampleCount } from "../test/readback.ts";
import {
  freePort,
  MissingBinaryError,
  type RunningService,
  ServiceStartError,
  startInfluxDB1,
  startRedis,
  startVictoriaMetrics,
  stopAll,
} from "./services.ts";

const here = path.dirname(fileURLToPath(import.meta.url));

/** True when nothing listens on the port any more (we can bind it ourselves). */
function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

async function using<T extends RunningService>(
  service: T,
  body: (s: T) => Promise<void>,
): Promise<void> {
  try {
    await body(service);
  } finally {
    await service.stop();
  }
}

/** The §4 point, with a nanosecond timestamp whose last digits matter. */
function wafLine(ns: bigint, severity = 95): string {
  return `waf_events,client_ip=203.0.113.9,rule_id=942100,severity_level=critical anomaly_score=65i,severity=${severity}i,response_code=403i ${ns}`;
}

async function writeOk(url: string, body: string): Promise<void> {
  const res = await fetch(url, { method: "POST", body });
  expect(res.status, await res.text()).toBe(204);
}

describe("freePort", () => {
  it("returns a port that can be bound on 127.0.0.1", async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(await canBind(port)).toBe(true);
  });
});

describe("startRedis", () => {
  it("answers PING, SET and GET, and frees its port and temp dir on stop", async () => {
    const redis = await startRedis();
    const pid = redis.pid as number;
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    const client = new Redis(redis.url);
    try {
      expect(await client.ping()).toBe("PONG");
      await client.set("services-test:key", "value");
      expect(await client.get("services-test:key")).toBe("value");
    } finally {
      client.disconnect();
    }
    await redis.stop();
    expect(await canBind(redis.port)).toBe(true);
    expect(existsSync(redis.dir)).toBe(false);
    // Node reaped it: no zombie left behind.
    expect(isAlive(pid)).toBe(false);
    expect(redis.pid).toBeUndefined();
    await redis.stop(); // idempotent
  });

  it("with a password rejects unauthenticated commands and accepts authenticated ones", async () => {
    await using(await startRedis({ password: "s3cr:t/@pw" }), async (redis) => {
      expect(redis.url).toBe(
        `redis://:${encodeURIComponent("s3cr:t/@pw")}@127.0.0.1:${redis.port}`,
      );
      const anonymous = new Redis({ host: "127.0.0.1", port: redis.port, maxRetriesPerRequest: 0 });
      anonymous.on("error", () => undefined); // ioredis also reports the refused HELLO here
      const authed = new Redis(redis.url);
      try {
        await expect(anonymous.ping()).rejects.toThrow(/NOAUTH/);
        expect(await authed.ping()).toBe("PONG");
      } finally {
        anonymous.disconnect();
        authed.disconnect();
      }
    });
  });

  it("restart() comes back on the same port, empty (no persistence)", async () => {
    await using(await startRedis(), async (redis) => {
      const before = { port: redis.port, pid: redis.pid };
      const first = new Redis(redis.url);
      await first.set("services-test:restart", "1");
      first.disconnect();
      await redis.restart();
      expect(redis.port).toBe(before.port);
      expect(redis.pid).not.toBe(before.pid);
      const second = new Redis(redis.url);
      try {
        expect(await second.get("services-test:restart")).toBeNull();
      } finally {
        second.disconnect();
      }
    });
  });

  it("up() fails with the server's own words when the port was taken while down", async () => {
    await using(await startRedis(), async (redis) => {
      await redis.down();
      const squatter = net.createServer();
      await new Promise<void>((resolve) => squatter.listen(redis.port, "127.0.0.1", resolve));
      try {
        const error = await redis.up().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ServiceStartError);
        expect(String(error)).toMatch(/address already in use/i);
      } finally {
        await new Promise((resolve) => squatter.close(resolve));
      }
      await redis.up();
      const client = new Redis(redis.url);
      try {
        expect(await client.ping()).toBe("PONG");
      } finally {
        client.disconnect();
      }
    });
  });
});

describe("startVictoriaMetrics", () => {
  it("accepts an InfluxDB v2 write and reads it back", async () => {
    await using(await startVictoriaMetrics(), async (vm) => {
      const ns = 1_700_000_000_123_456_789n;
      await writeOk(`${vm.url}/api/v2/write?org=o&bucket=b&precision=ns`, wafLine(ns));
      const series = await victoriaPoints(vm.url);
      expect(series).toHaveLength(1);
      expect(series[0]?.metric).toMatchObject({
        __name__: "waf_events_severity",
        client_ip: "203.0.113.9",
        rule_id: "942100",
        severity_level: "critical",
      });
      expect(series[0]?.values).toEqual([95]);
      expect(series[0]?.timestamps).toEqual([Number(ns / 1_000_000n)]); // VM keeps milliseconds
      expect(await victoriaSampleCount(vm.url, "waf_events_anomaly_score")).toBe(1);
    });
  });

  it("keeps port and data across restart(), and frees the port on stop()", async () => {
    const vm = await startVictoriaMetrics();
    try {
      const port = vm.port;
      await writeOk(
        `${vm.url}/api/v2/write?org=o&bucket=b&precision=ns`,
        wafLine(1_700_000_000_000_000_000n),
      );
      await vm.restart();
      expect(vm.port).toBe(port);
      expect(await victoriaSampleCount(vm.url)).toBe(1);
    } finally {
      await vm.stop();
    }
    expect(await canBind(vm.port)).toBe(true);
    expect(existsSync(vm.dir)).toBe(false);
  });
});

describe("startInfluxDB1", () => {
  it("creates the database, accepts a v1 write and returns it, nanoseconds exact", async () => {
    await using(await startInfluxDB1({ database: "waf" }), async (influx) => {
      const ns = 1_700_000_000_123_456_789n;
      await writeOk(`${influx.url}/write?db=waf&precision=ns`, wafLine(ns));
      const series = await influxQuery(influx.url, "waf", 'SELECT * FROM "waf_events"');
      expect(series).toHaveLength(1);
      expect(series[0]?.name).toBe("waf_events");
      expect(await influxRows(influx.url, "waf", 'SELECT * FROM "waf_events"')).toEqual([
        {
          time: ns,
          anomaly_score: 65,
          client_ip: "203.0.113.9",
          response_code: 403,
          rule_id: "942100",
          severity: 95,
          severity_level: "critical",
        },
      ]);
      expect(await influxQuery(influx.url, "waf", 'SELECT * FROM "nothing_here"')).toEqual([]);
      await expect(
        influxQuery(influx.url, "missing_db", 'SELECT * FROM "waf_events"'),
      ).rejects.toThrow(/database not found/);
    });
  });

  it("keeps port and data across restart() and an outage (down/up), and frees the port on stop()", async () => {
    const influx = await startInfluxDB1({ database: "waf" });
    try {
      const port = influx.port;
      await writeOk(
        `${influx.url}/write?db=waf&precision=ns`,
        wafLine(1_700_000_000_000_000_001n, 90),
      );
      await influx.restart();
      expect(influx.port).toBe(port);

      await influx.down("SIGKILL"); // a crash, not a clean shutdown: the WAL must carry the point
      await expect(fetch(`${influx.url}/ping`)).rejects.toThrow();
      await influx.up();
      await writeOk(
        `${influx.url}/write?db=waf&precision=ns`,
        wafLine(1_700_000_000_000_000_002n, 91),
      );
      const rows = await influxRows(influx.url, "waf", 'SELECT "severity" FROM "waf_events"');
      expect(rows).toEqual([
        { time: 1_700_000_000_000_000_001n, severity: 90 },
        { time: 1_700_000_000_000_000_002n, severity: 91 },
      ]);
    } finally {
      await influx.stop();
    }
    expect(await canBind(influx.port)).toBe(true);
    expect(existsSync(influx.dir)).toBe(false);
  });
});

describe("lifecycle", () => {
  it("names the binary and the fix when a server is not installed", async () => {
    const savedPath = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      const error = await startVictoriaMetrics().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MissingBinaryError);
      expect(String(error)).toMatch(/victoria-metrics.*scripts\/ensure-deps\.mjs/s);
    } finally {
      process.env.PATH = savedPath;
    }
  });

  it("stopAll() stops every running server", async () => {
    const servers = await Promise.all([startRedis(), startVictoriaMetrics(), startInfluxDB1()]);
    await stopAll();
    for (const s of servers) {
      expect(s.pid).toBeUndefined();
      expect(await canBind(s.port)).toBe(true);
    }
  });

  // A parent that dies must not leave servers behind. The child imports this module through tsx,
  // starts Redis, reports it, then either exits without stop() or is SIGKILLed (no handler runs).
  for (const ending of ["exits without stop()", "is SIGKILLed"] as const) {
    it(`leaves no server behind when the parent ${ending}`, async () => {
      const code = `
        const { startRedis } = await import(${JSON.stringify(path.join(here, "services.ts"))});
        const redis = await startRedis();
        console.log(JSON.stringify({ port: redis.port, dir: redis.dir }));
        // Alive until the test has looked (stdin open), then: killed, or an event loop that empties.
        process.stdin.resume();
        process.stdin.once("end", () => process.stdin.pause());
      `;
      const child = spawn(
        process.execPath,
        ["--import", "tsx", "--input-type=module", "-e", code],
        {
          cwd: path.join(here, ".."),
          stdio: ["pipe", "pipe", "inherit"],
        },
      );
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      const line = await new Promise<string>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes("\n")) resolve(out.split("\n")[0] as string);
        });
        child.once("exit", () => reject(new Error(`child exited before reporting: ${out}`)));
      });
      const { port, dir } = JSON.parse(line) as { port: number; dir: string };
      expect(await canBind(port)).toBe(false);
      if (ending === "is SIGKILLed") child.kill("SIGKILL");
      else child.stdin?.end();
      // Also proves the server does not keep its parent's event loop alive.
      await exited;
      expect(await eventually(() => canBind(port))).toBe(true);
      expect(await eventually(() => !existsSync(dir))).toBe(true);
    });
  }
});
