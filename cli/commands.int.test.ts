/**
 * The `waf` commands against a real Redis (reference §7, §8), mostly through `node bin/waf.js`, the
 * way an operator runs them. Unique keys per test, so the tests run concurrently.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { gzipSync } from "node:zlib";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AlertList } from "../core/alert/alert-list.ts";
import { type RunningService, startRedis } from "../local/services.ts";
import { replay, sourceOf } from "./replay.ts";
import { run } from "./run.ts";

const ROOT = join(import.meta.dirname, "..");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/waf.js …`; `until` (on stdout) then SIGINT, for --follow. */
function waf(
  args: string[],
  env: Record<string, string>,
  opts: { until?: (stdout: string) => boolean; onStart?: () => Promise<void> } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["bin/waf.js", ...args], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: "warn", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    let signalled = false;
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
      if (!signalled && opts.until?.(stdout)) {
        signalled = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The same invocation in this process (cli/run.ts), for variants: cheaper than a process. */
async function wafIn(args: string[], env: Record<string, string>): Promise<Run> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = "";
  let stderr = "";
  out.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  err.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await run(
    args,
    { ...process.env, LOG_LEVEL: "warn", ...env },
    { stdout: out, stderr: err },
  );
  return { code, stdout, stderr };
}

let redisServer: RunningService;
let redis: Redis;
let n = 0;

/** Keys of one test: nothing shared between tests. */
function keys() {
  n++;
  const env = {
    REDIS_URL: redisServer.url,
    STREAM_KEY: `t${n}:stream`,
    STREAM_FIELD: "event",
    CONSUMER_GROUP: `t${n}:group`,
    DLQ_STREAM_KEY: `t${n}:dlq`,
    ALERT_LIST_KEY: `t${n}:alerts`,
  };
  return env;
}

beforeAll(async () => {
  redisServer = await startRedis();
  redis = new Redis(redisServer.url);
});

afterAll(async () => {
  await redis?.quit();
  await redisServer?.stop();
});

async function streamValues(key: string): Promise<Buffer[]> {
  const entries = await redis.xrangeBuffer(key, "-", "+");
  return entries.map(([, fields]) => fields[1] as Buffer);
}

describe.concurrent("waf replay", () => {
  it("adds every non-blank line of a file verbatim, invalid ones and invalid UTF-8 included", async () => {
    const env = keys();
    const dir = mkdtempSync(join(tmpdir(), "waf-replay-"));
    const bad = Buffer.from([0x7b, 0x22, 0x78, 0x22, 0x3a, 0xff, 0xfe, 0x7d]); // {"x":\xff\xfe}
    const lines = [
      Buffer.from('{"transaction":{"id":"a","client_ip":"203.0.113.9","anomaly_score":65}}'),
      Buffer.from("{not json"),
      bad,
      Buffer.from('  {"spaced": true}  '),
    ];
    const file = join(dir, "records.jsonl");
    writeFileSync(
      file,
      Buffer.concat([
        lines[0] as Buffer,
        Buffer.from("\r\n\n   \n"),
        lines[1] as Buffer,
        Buffer.from("\n"),
        lines[2] as Buffer,
        Buffer.from("\n"),
        lines[3] as Buffer,
      ]),
    );
    const r = await waf(["replay", file], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      new RegExp(
        `^replayed 4 records from 1 source to stream ${env.STREAM_KEY} in .*; skipped 2 blank lines\\n$`,
      ),
    );
    expect(await streamValues(env.STREAM_KEY)).toEqual(lines);
  });

  it("replays a directory recursively in name order, gzipped files included, skipping other files", async () => {
    const env = keys();
    const dir = mkdtempSync(join(tmpdir(), "waf-replay-dir-"));
    mkdirSync(join(dir, "2025-07-21"));
    writeFileSync(join(dir, "a.jsonl"), '{"n":1}\n{"n":2}\n');
    writeFileSync(join(dir, "2025-07-21", "audit.log.gz"), gzipSync('{"n":3}\n{"n":4}\n'));
    // Gzip is recognised by its bytes, whatever the name says.
    writeFileSync(join(dir, "b.json-rotated"), gzipSync('{"n":5}'));
    writeFileSync(join(dir, "NOTES.md"), "not a record\n");
    const r = await waf(["replay", dir], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^replayed 5 records from 3 sources/);
    expect(r.stderr).toContain("skipping");
    expect(r.stderr).toContain("NOTES.md");
    const values = (await streamValues(env.STREAM_KEY)).map((b) => b.toString());
    expect(values).toEqual(['{"n":3}', '{"n":4}', '{"n":1}', '{"n":2}', '{"n":5}']);
  });

  it("paces records at --rate and still sends them all", async () => {
    const env = keys();
    const file = join(mkdtempSync(join(tmpdir(), "waf-rate-")), "r.jsonl");
    writeFileSync(file, Array.from({ length: 12 }, (_, i) => `{"i":${i}}`).join("\n"));
    const r = await waf(["replay", file, "--rate", "40"], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^replayed 12 records/);
    expect(await redis.xlen(env.STREAM_KEY)).toBe(12);
  });

  it("paces chunks by a clock: N records at rate R take N / R seconds", async () => {
    const env = keys();
    let clock = 0;
    const waits: number[] = [];
    const text = Array.from({ length: 100 }, (_, i) => `{"i":${i}}`).join("\n");
    const r = await replay(redis, [sourceOf("mem", text)], {
      shards: [{ index: 0, stream: env.STREAM_KEY, dlq: env.DLQ_STREAM_KEY }],
      field: "event",
      rate: 50,
      now: () => clock,
      sleep: async (ms) => {
        waits.push(ms);
        if (ms > 0) clock += ms;
      },
    });
    expect(r.sent).toBe(100);
    // Chunks of 5 (a tenth of the rate), each sent when its last record is due: 100 at 2 s.
    expect(waits).toHaveLength(20);
    expect(clock).toBe(2000);
    expect(await redis.xlen(env.STREAM_KEY)).toBe(100);
  });

  it("trims the stream with --maxlen like a producer", async () => {
    const env = keys();
    const file = join(mkdtempSync(join(tmpdir(), "waf-maxlen-")), "r.jsonl");
    writeFileSync(file, Array.from({ length: 300 }, (_, i) => `{"i":${i}}`).join("\n"));
    const r = await wafIn(["replay", file, "--maxlen", "10"], env);
    expect(r.code).toBe(0);
    expect(await redis.xlen(env.STREAM_KEY)).toBeLessThan(300);
  });

  it("refuses a missing file and bad options with exit code 2", async () => {
    const env = keys();
    const [missing, badRate] = await Promise.all([
      waf(["replay", "/nonexistent.jsonl"], env),
      wafIn(["replay", "x", "--rate", "fast"], env),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot read /nonexistent.jsonl");
    expect(badRate.code).toBe(2);
    expect(badRate.stderr).toContain("--rate must be a number > 0");
  });
});

function alert(i: number, o: Record<string, unknown> = {}) {
  return {
    timestamp: 1_750_000_000 + i,
    severity: 90 + i,
    severity_level: "critical" as const,
    client_ip: `203.0.113.${i}`,
    rule_id: "942100",
    categories: ["sqli"],
    uri: `/item?id=${i}`,
    method: "GET",
    tx_id: `tx-${i}`,
    anomaly_score: 60,
    ...o,
  };
}

describe.concurrent("waf alerts", () => {
  it("prints the alert list newest first as a table, filters by level, IP and rule, and prints JSON lines", async () => {
    const env = keys();
    const list = new AlertList(redis, {
      listKey: env.ALERT_LIST_KEY,
      maxLength: 100,
      retentionSeconds: 3600,
    });
    await list.push([alert(1), alert(2, { severity_level: "high", severity: 70 }), alert(3)]);
    await list.push([alert(4, { client_ip: "198.51.100.7", rule_id: "932160" })]);

    const [all, critical, byIp, byRule, none, bad] = await Promise.all([
      waf(["alerts"], env),
      wafIn(["alerts", "--level", "critical", "--limit", "2"], env),
      wafIn(["alerts", "--ip", "198.51.100.7", "--json"], env),
      wafIn(["alerts", "--rule", "942100", "--level", "high", "--json"], env),
      wafIn(["alerts", "--level", "low"], env),
      wafIn(["alerts", "--level", "severe"], env),
    ]);
    expect(all.code).toBe(0);
    const rows = all.stdout.trimEnd().split("\n");
    expect(rows[0]).toMatch(
      /^TIME \(UTC\)\s+LEVEL\s+SEV\s+CLIENT IP\s+RULE\s+CATEGORY\s+METHOD\s+TX\s+URI$/,
    );
    expect(rows.slice(1).map((r) => r.match(/tx-\d/)?.[0])).toEqual([
      "tx-4",
      "tx-3",
      "tx-2",
      "tx-1",
    ]);
    expect(all.stderr).toContain("4 alerts shown, newest first");

    expect(critical.stdout.match(/tx-\d/g)).toEqual(["tx-4", "tx-3"]);

    const parsed = byIp.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(parsed).toEqual([
      expect.objectContaining({
        ...alert(4, { client_ip: "198.51.100.7", rule_id: "932160" }),
        listed_at: expect.any(Number),
      }),
    ]);

    expect(
      byRule.stdout
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).tx_id),
    ).toEqual(["tx-2"]);

    expect(none.code).toBe(0);
    expect(none.stdout).toBe("");
    expect(none.stderr).toContain("no alerts match");

    expect(bad.code).toBe(2);
  });

  it("--follow prints the newest alerts, then new ones as they are listed, until Ctrl-C", async () => {
    const env = keys();
    const list = new AlertList(redis, {
      listKey: env.ALERT_LIST_KEY,
      maxLength: 100,
      retentionSeconds: 3600,
    });
    await list.push([alert(1), alert(2)]);
    let pushed = false;
    const r = await waf(["alerts", "--follow", "--json", "--interval", "0.2"], env, {
      until: (out) => {
        if (!pushed && out.includes("tx-2")) {
          pushed = true;
          void list.push([alert(3), alert(5, { severity_level: "high" })]);
        }
        return out.includes("tx-5");
      },
    });
    expect(r.code).toBe(0);
    // Oldest first, like tail -f; each alert once.
    expect(
      r.stdout
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).tx_id),
    ).toEqual(["tx-1", "tx-2", "tx-3", "tx-5"]);
  });
});

/** A DLQ entry as the reader writes it (core/stream/reader.ts deadLetter). */
async function deadLetter(env: ReturnType<typeof keys>, reason: string, record?: string) {
  const fields = [
    "reason",
    reason,
    "attempts",
    "1",
    "entry_id",
    `${Date.now()}-0`,
    "stream",
    env.STREAM_KEY,
    "group",
    env.CONSUMER_GROUP,
    "consumer",
    "reader-1",
    "failed_at",
    new Date().toISOString(),
  ];
  if (record !== undefined) fields.push("event", record);
  return (await redis.xadd(env.DLQ_STREAM_KEY, "*", ...fields)) as string;
}

describe.concurrent("waf dlq", () => {
  it("lists entries newest first, filtered by reason, and shows one with its record", async () => {
    const env = keys();
    const a = await deadLetter(env, "not JSON: Unexpected token n", "{not json");
    const b = await deadLetter(
      env,
      "InfluxDB refused the point: points beyond retention policy dropped=1",
      '{"transaction":{"id":"late"}}',
    );
    const c = await deadLetter(env, 'entry has no "event" field');

    const [list, filtered, show, raw, missing] = await Promise.all([
      waf(["dlq", "list"], env),
      wafIn(["dlq", "list", "--reason", "RETENTION", "--json"], env),
      waf(["dlq", "show", a], env),
      waf(["dlq", "show", b, "--raw"], env),
      wafIn(["dlq", "show", "1-1"], env),
    ]);
    expect(list.code).toBe(0);
    const rows = list.stdout.trimEnd().split("\n");
    expect(rows[0]).toMatch(/^DLQ ID\s+FAILED AT\s+TRIES\s+STREAM ENTRY\s+REASON\s+RECORD$/);
    expect(rows.slice(1).map((r) => r.split(" ")[0])).toEqual([c, b, a]);
    expect(list.stderr).toContain("3 entries shown");

    expect(
      filtered.stdout
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).id),
    ).toEqual([b]);

    expect(show.code).toBe(0);
    expect(show.stdout).toContain("not JSON: Unexpected token n");
    expect(show.stdout).toMatch(/event\s+\(9 bytes, verbatim\)\n\{not json\n$/);

    expect(raw.stdout).toBe('{"transaction":{"id":"late"}}\n');

    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no entry 1-1");
  });

  it("redrives matching records back to the stream and removes them from the DLQ; --dry-run changes nothing", async () => {
    const env = keys();
    const keep = await deadLetter(env, "not JSON: Unexpected token n", "{not json");
    const r1 = '{"transaction":{"id":"r1","client_ip":"203.0.113.1","anomaly_score":65}}';
    const r2 = '{"transaction":{"id":"r2","client_ip":"203.0.113.2","anomaly_score":65}}';
    await deadLetter(env, "InfluxDB refused: partial write: points beyond retention policy", r1);
    await deadLetter(env, "InfluxDB refused: partial write: points beyond retention policy", r2);
    const empty = await deadLetter(env, 'entry has no "event" field');

    const dry = await waf(["dlq", "redrive", "--reason", "retention", "--dry-run"], env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("dry run: would redrive 2 records");
    expect(await redis.xlen(env.DLQ_STREAM_KEY)).toBe(4);
    expect(await redis.exists(env.STREAM_KEY)).toBe(0);

    const run = await waf(["dlq", "redrive", "--reason", "retention"], env);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(
      `redrove 2 records from ${env.DLQ_STREAM_KEY} to ${env.STREAM_KEY}`,
    );
    expect((await streamValues(env.STREAM_KEY)).map((b) => b.toString())).toEqual([r1, r2]);
    // Each carries the entry it first arrived as, so an event timed by it keeps its point.
    const moved = await redis.xrange(env.STREAM_KEY, "-", "+");
    for (const [, fields] of moved) expect(fields).toContain("origin_id");
    expect((await redis.xrange(env.DLQ_STREAM_KEY, "-", "+")).map(([id]) => id)).toEqual([
      keep,
      empty,
    ]);

    // By ID; an entry without a record stays; an unknown ID fails.
    const byId = await wafIn(["dlq", "redrive", keep, empty, "1-0"], env);
    expect(byId.code).toBe(1);
    expect(byId.stdout).toContain("redrove 1 record");
    expect(byId.stdout).toContain("1 entry without a record left in place");
    expect(byId.stdout).toContain("not in the DLQ: 1-0");
    expect((await streamValues(env.STREAM_KEY)).map((b) => b.toString())).toEqual([
      r1,
      r2,
      "{not json",
    ]);
  });

  it("redrives each record once when two operators redrive at the same time", async () => {
    const env = keys();
    for (let i = 0; i < 40; i++) await deadLetter(env, "refused", `{"i":${i}}`);
    const [x, y] = await Promise.all([
      wafIn(["dlq", "redrive"], env),
      wafIn(["dlq", "redrive"], env),
    ]);
    expect(x.code).toBe(0);
    expect(y.code).toBe(0);
    expect(await redis.xlen(env.STREAM_KEY)).toBe(40);
    expect(await redis.xlen(env.DLQ_STREAM_KEY)).toBe(0);
  });
});

describe.concurrent("waf status", () => {
  it("reports stream length, lag, pending per consumer with idle time, DLQ and alert list sizes", async () => {
    const env = keys();
    for (let i = 0; i < 10; i++) await redis.xadd(env.STREAM_KEY, "*", "event", `{"i":${i}}`);
    await redis.xgroup("CREATE", env.STREAM_KEY, env.CONSUMER_GROUP, "0");
    await redis.xreadgroup(
      "GROUP",
      env.CONSUMER_GROUP,
      "reader-a",
      "COUNT",
      3,
      "STREAMS",
      env.STREAM_KEY,
      ">",
    );
    await redis.xreadgroup(
      "GROUP",
      env.CONSUMER_GROUP,
      "reader-b",
      "COUNT",
      2,
      "STREAMS",
      env.STREAM_KEY,
      ">",
    );
    await deadLetter(env, "not JSON", "{x");
    await new AlertList(redis, {
      listKey: env.ALERT_LIST_KEY,
      maxLength: 10,
      retentionSeconds: 60,
    }).push([alert(1)]);

    const r = await waf(["status", "--sample", "0.2"], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Redis ${redisServer.url}`);
    expect(r.stdout).toContain(`Stream ${env.STREAM_KEY}: 10 entries, newest added`);
    expect(r.stdout).toContain(
      `Consumer group ${env.CONSUMER_GROUP}: lag 5 entries not yet read, 5 entries pending`,
    );
    expect(r.stdout).toMatch(
      / {2}consumer reader-a: 3 pending, idle \d+ m?s\n {2}consumer reader-b: 2 pending, idle \d+ m?s\n/,
    );
    expect(r.stdout).toMatch(/Throughput over \d+ ms: 0\/s arriving, 0\/s read/);
    expect(r.stdout).toContain(`Dead-letter stream ${env.DLQ_STREAM_KEY}: 1 entry, newest at`);
    expect(r.stdout).toContain(`Alert list ${env.ALERT_LIST_KEY}: 1 alert, newest listed`);
    expect(r.stdout).toContain("5 entries waiting and none read while sampling");

    const json = await wafIn(["status", "--sample", "0", "--json"], env);
    expect(JSON.parse(json.stdout)).toMatchObject({
      stream: { length: 10 },
      group: { exists: true, lag: 5, pending: 5 },
      dlq: { length: 1 },
      alerts: { length: 1 },
    });
  });
});

describe("Redis unreachable", () => {
  let silent: Server;
  let silentPort: number;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    // Accepts connections and never answers: a half-open tunnel or a firewall that eats packets.
    silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    silentPort = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  });

  it.concurrent.each([
    [["status"]],
    [["replay", join(ROOT, "test/fixtures/modsecurity")]],
    [["alerts", "--follow"]],
    [["dlq", "list"]],
    [["view", "--port", "0"]],
    [["alerts"], wafIn],
    [["dlq", "show", "1-0"], wafIn],
    [["dlq", "redrive"], wafIn],
  ])(
    "waf %j exits 3 naming Redis and the masked URL when nothing listens",
    async (args, runner = waf) => {
      // A port that was just free: nothing listens there.
      const server = createServer();
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      const port = (server.address() as { port: number }).port;
      await new Promise<void>((r) => server.close(() => r()));
      const r = await runner(args, { REDIS_URL: `redis://:hunter2secret@127.0.0.1:${port}` });
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`cannot reach Redis at redis://:***@127.0.0.1:${port}`);
      expect(r.stderr).toContain("connection refused");
      expect(r.stderr + r.stdout).not.toContain("hunter2secret");
    },
  );

  it.concurrent("gives up on a server that never answers", async () => {
    const r = await waf(["status"], { REDIS_URL: `redis://127.0.0.1:${silentPort}` });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`cannot reach Redis at redis://127.0.0.1:${silentPort}: no answer`);
  });
});
