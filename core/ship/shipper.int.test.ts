/**
 * The shipper against a real Redis and real files (reference §7 `waf ship`, §8): rotation in its
 * forms, partial lines, non-UTF-8 bytes, oversized lines, a Redis outage, restarts from the
 * checkpoint, Concurrent-log directories. Records are real ModSecurity + CRS records; each
 * test uses its own stream key and directory.
 */
import {
  appendFileSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningService, startRedis } from "../../local/services.ts";
import { corpusLines } from "../../test/fixtures/records.ts";
import { until } from "../../test/wait.ts";
import type { LogExtra, Logger } from "../lib/logger.ts";
import { parseState } from "./checkpoint.ts";
import { classifyPaths } from "./files.ts";
import { RedisStreamProducer } from "./producer.ts";
import { Shipper, type ShipperOptions } from "./shipper.ts";

const CORPUS = corpusLines("crs3-pl1.jsonl.gz");
/** Records with raw non-UTF-8 bytes, as ModSecurity wrote them. */
const NON_UTF8 = CORPUS.filter((l) => !Buffer.from(l.toString("utf8")).equals(l));

let server: RunningService;
let redis: Redis;
let n = 0;

beforeAll(async () => {
  server = await startRedis();
  redis = new Redis(server.url);
});
afterAll(async () => {
  await redis?.quit();
  await server?.stop();
});

interface Logged {
  level: string;
  message: string;
  extra?: LogExtra;
}

function memoryLogger(): Logger & { lines: Logged[] } {
  const lines: Logged[] = [];
  const at = (level: string) => (message: string, extra?: LogExtra) => {
    lines.push({ level, message, extra });
  };
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

interface Setup {
  dir: string;
  key: string;
  state: string;
  logger: ReturnType<typeof memoryLogger>;
  start(paths: string[], extra?: Partial<ShipperOptions>): Promise<Shipper>;
  /** The records on the stream, as bytes, in order. */
  stream(): Promise<Buffer[]>;
}

function setup(): Setup {
  const dir = mkdtempSync(join(tmpdir(), "waf-ship-"));
  const key = `ship-test-${++n}`;
  const state = join(dir, "state.json");
  const logger = memoryLogger();
  return {
    dir,
    key,
    state,
    logger,
    async start(paths, extra = {}) {
      const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
      const shipper = new Shipper({
        paths: await classifyPaths(paths.map((p) => join(dir, p))),
        stateFile: state,
        producer: new RedisStreamProducer(client, {
          shards: [{ index: 0, stream: key, dlq: `${key}:dlq` }],
          field: "event",
          maxLen: 1_000_000,
          timeoutMs: 3_000,
        }),
        logger,
        maxRecordBytes: 1_048_576,
        scanIntervalMs: 50,
        settleMs: 300,
        closeInactiveMs: 1_000,
        checkpointIntervalMs: 100,
        statsIntervalMs: 0,
        retry: { baseMs: 50, maxMs: 500 },
        ...extra,
      });
      await shipper.start();
      const stop = shipper.stop.bind(shipper);
      shipper.stop = async (ms?: number) => {
        await stop(ms);
        client.disconnect();
      };
      return shipper;
    },
    async stream() {
      const entries = await redis.xrangeBuffer(key, "-", "+");
      return entries.map(([, fields]) => fields[1] as Buffer);
    },
  };
}

const lines = (records: Buffer[]) => Buffer.concat(records.flatMap((r) => [r, Buffer.from("\n")]));
const ids = (records: Buffer[]) =>
  records.map(
    (r) => /"unique_id":"([^"]+)"/.exec(r.toString("latin1"))?.[1] ?? r.toString("latin1"),
  );

async function shipped(s: Setup, count: number): Promise<Buffer[]> {
  return until(`${count} records on the stream`, async () => {
    const got = await s.stream();
    return got.length >= count ? got : undefined;
  });
}

describe("waf ship: tailing a Serial audit log", () => {
  it("adds every record verbatim, non-UTF-8 bytes included, and waits for a partial last line", async () => {
    const s = setup();
    const records = [...CORPUS.slice(0, 50), ...NON_UTF8];
    expect(NON_UTF8.length).toBeGreaterThan(0);
    const log = join(s.dir, "audit.log");
    writeFileSync(
      log,
      Buffer.concat([
        lines(records),
        Buffer.from("\n  \n"),
        CORPUS[60]?.subarray(0, 100) as Buffer,
      ]),
    );
    const shipper = await s.start(["audit.log"]);
    const got = await shipped(s, records.length);
    expect(got).toEqual(records); // byte for byte, in order; blank lines left out
    // The rest of the partial line arrives: the record goes out whole.
    appendFileSync(log, Buffer.concat([CORPUS[60]?.subarray(100) as Buffer, Buffer.from("\n")]));
    const after = await shipped(s, records.length + 1);
    expect(after.at(-1)).toEqual(CORPUS[60]);
    await shipper.stop();
    expect(shipper.stats()).toMatchObject({ shipped: records.length + 1, lag_bytes: 0, errors: 0 });
  });

  it("skips a line over MAX_RECORD_BYTES with a warning naming it, and ships the rest", async () => {
    const s = setup();
    // Far longer than everything the shipper may hold: skipping it must not stall reading.
    const big = Buffer.from(`{"transaction":{"unique_id":"huge-1","x":"${"A".repeat(300_000)}"}}`);
    writeFileSync(join(s.dir, "audit.log"), lines([CORPUS[0] as Buffer, big, CORPUS[1] as Buffer]));
    const shipper = await s.start(["audit.log"], {
      maxRecordBytes: 4096,
      maxUnackedBytes: 32_768,
      readChunkBytes: 8192,
    });
    const got = await shipped(s, 2);
    await shipper.stop();
    expect(ids(got)).toEqual(ids([CORPUS[0] as Buffer, CORPUS[1] as Buffer]));
    expect(shipper.stats()).toMatchObject({ skipped_oversize: 1, lag_bytes: 0 });
    expect(s.logger.lines.find((l) => l.level === "warn")?.extra).toMatchObject({
      tx_id: "huge-1",
      bytes: big.length,
      max_record_bytes: 4096,
    });
  });

  it("resumes from the checkpoint after a stop: nothing shipped twice, nothing missed", async () => {
    const s = setup();
    const log = join(s.dir, "audit.log");
    writeFileSync(log, lines(CORPUS.slice(0, 100)));
    let shipper = await s.start(["audit.log"]);
    await shipped(s, 100);
    await shipper.stop();
    const cp = parseState(await readFile(s.state, "utf8"));
    expect(cp).toMatchObject([{ path: log, offset: lines(CORPUS.slice(0, 100)).length }]);
    appendFileSync(log, lines(CORPUS.slice(100, 150)));
    shipper = await s.start(["audit.log"]);
    await shipped(s, 150);
    await shipper.stop();
    expect(ids(await s.stream())).toEqual(ids(CORPUS.slice(0, 150)));
  });

  it("follows copytruncate: the copy's unread tail is shipped, what was acknowledged is not sent again", async () => {
    const s = setup();
    const log = join(s.dir, "audit.log");
    writeFileSync(log, lines(CORPUS.slice(0, 200)));
    const shipper = await s.start(["audit.log*"]);
    await shipped(s, 200);
    await until("the checkpoint to cover the file", async () => {
      const cp = parseState(
        await readFile(s.state, "utf8").catch(() => '{"version":1,"files":[]}'),
      );
      return cp[0]?.offset === lines(CORPUS.slice(0, 200)).length;
    });
    // Records written just before the rotation, then logrotate copytruncate, then new records.
    appendFileSync(log, lines(CORPUS.slice(200, 230)));
    copyFileSync(log, join(s.dir, "audit.log.1"));
    truncateSync(log, 0);
    appendFileSync(log, lines(CORPUS.slice(230, 260)));
    const got = await shipped(s, 260);
    await new Promise((r) => setTimeout(r, 500)); // nothing more may come
    const all = ids(await s.stream());
    await shipper.stop();
    expect(new Set(all)).toEqual(new Set(ids(CORPUS.slice(0, 260))));
    // Records 200..229 may be read from the live file before the truncation and again from
    // the copy (at-least-once); the first 200, acknowledged before the rotation, never twice.
    const dup = all.length - new Set(all).size;
    expect(dup).toBeLessThanOrEqual(30);
    expect(s.logger.lines.find((l) => l.extra?.reason === "copy")?.extra).toMatchObject({
      path: join(s.dir, "audit.log.1"),
      copy_of: log,
    });
    expect(new Set(ids(got.slice(0, 200)))).toEqual(new Set(ids(CORPUS.slice(0, 200))));
    expect(all.filter((id) => ids(CORPUS.slice(0, 200)).includes(id))).toHaveLength(200);
  });

  it("follows rename + create: the renamed file is read to its end, the new one from 0", async () => {
    const s = setup();
    const log = join(s.dir, "audit.log");
    writeFileSync(log, lines(CORPUS.slice(0, 40)));
    const shipper = await s.start(["audit.log*"]);
    await shipped(s, 40);
    renameSync(log, join(s.dir, "audit.log.1"));
    // The writer still holds the old file open (libmodsecurity does until restarted).
    appendFileSync(join(s.dir, "audit.log.1"), lines(CORPUS.slice(40, 50)));
    writeFileSync(log, lines(CORPUS.slice(50, 70)));
    await shipped(s, 70);
    await new Promise((r) => setTimeout(r, 400));
    await shipper.stop();
    const all = ids(await s.stream());
    expect([...all].sort()).toEqual(ids(CORPUS.slice(0, 70)).sort()); // each exactly once
    expect(s.logger.lines.some((l) => l.message.includes("renamed"))).toBe(true);
  });

  it("starts again at 0 after a plain truncation, and picks up a file that appears later", async () => {
    const s = setup();
    const log = join(s.dir, "audit.log");
    writeFileSync(log, lines(CORPUS.slice(0, 20)));
    const shipper = await s.start(["audit.log", "later-*.log"]);
    await shipped(s, 20);
    truncateSync(log, 0);
    await new Promise((r) => setTimeout(r, 200));
    appendFileSync(log, lines(CORPUS.slice(20, 25)));
    writeFileSync(join(s.dir, "later-1.log"), lines(CORPUS.slice(25, 30)));
    await shipped(s, 30);
    await shipper.stop();
    expect(ids(await s.stream()).sort()).toEqual(ids(CORPUS.slice(0, 30)).sort());
  });

  it("does not skip a checkpointed file that was truncated and grew past the old offset while it was down", async () => {
    const s = setup();
    const log = join(s.dir, "audit.log");
    writeFileSync(log, lines(CORPUS.slice(0, 10)));
    let shipper = await s.start(["audit.log"]);
    await shipped(s, 10);
    await shipper.stop();
    truncateSync(log, 0); // same inode, new content, larger than before
    appendFileSync(log, lines(CORPUS.slice(10, 60)));
    shipper = await s.start(["audit.log"]);
    await shipped(s, 60);
    await shipper.stop();
    expect(ids(await s.stream())).toEqual(ids(CORPUS.slice(0, 60)));
  });

  it("resumes a copytruncate copy made while it was down at the checkpoint of the file it copies", async () => {
    for (const grown of [20, 200]) {
      // 20: the live file is smaller than the old offset (truncated); 200: larger (replaced).
      const s = setup();
      const log = join(s.dir, "audit.log");
      writeFileSync(log, lines(CORPUS.slice(0, 100)));
      let shipper = await s.start(["audit.log*"]);
      await shipped(s, 100);
      await shipper.stop();
      appendFileSync(log, lines(CORPUS.slice(100, 120))); // written after the stop
      copyFileSync(log, join(s.dir, "audit.log.1"));
      truncateSync(log, 0);
      appendFileSync(log, lines(CORPUS.slice(300, 300 + grown)));
      shipper = await s.start(["audit.log*"]);
      await shipped(s, 120 + grown);
      await new Promise((r) => setTimeout(r, 300));
      await shipper.stop();
      const expected = [...CORPUS.slice(0, 120), ...CORPUS.slice(300, 300 + grown)];
      expect(ids(await s.stream()).sort()).toEqual(ids(expected).sort()); // each exactly once
    }
  });

  it("rides out a Redis outage: reading pauses, nothing is lost, errors are counted", async () => {
    const own = await startRedis();
    const s = setup();
    const client = new Redis(own.url, { maxRetriesPerRequest: 1 });
    client.on("error", () => undefined); // the outage is the point
    const log = join(s.dir, "audit.log");
    writeFileSync(log, lines(CORPUS.slice(0, 10)));
    const shipper = new Shipper({
      paths: await classifyPaths([log]),
      stateFile: s.state,
      producer: new RedisStreamProducer(client, {
        shards: [{ index: 0, stream: s.key, dlq: `${s.key}:dlq` }],
        field: "event",
        maxLen: 1000,
        timeoutMs: 2000,
      }),
      logger: s.logger,
      maxRecordBytes: 1_048_576,
      scanIntervalMs: 50,
      checkpointIntervalMs: 100,
      statsIntervalMs: 0,
      retry: { baseMs: 50, maxMs: 300 },
    });
    await shipper.start();
    const check = new Redis(own.url, { maxRetriesPerRequest: 1, lazyConnect: true });
    check.on("error", () => undefined);
    try {
      await until("10 records", async () => (await check.xlen(s.key)) === 10);
      await own.down();
      appendFileSync(log, lines(CORPUS.slice(10, 40)));
      await until("a failed write", () => shipper.stats().errors > 0);
      expect(shipper.stats().redis_ok).toBe(false);
      await own.up(); // a restarted Redis without persistence: the stream starts empty
      const got = await until("the records written during the outage", async () => {
        const e = await check.xrangeBuffer(s.key, "-", "+").catch(() => []);
        return e.length >= 30 ? e.map(([, f]) => f[1] as Buffer) : undefined;
      });
      expect(ids(got)).toEqual(ids(CORPUS.slice(10, 40)));
      expect(shipper.stats().redis_ok).toBe(true);
      expect(s.logger.lines.map((l) => l.message)).toContain("Redis is back");
    } finally {
      await shipper.stop();
      client.disconnect();
      check.disconnect();
      await own.stop();
    }
  });
});

describe("waf ship: a Concurrent-log directory", () => {
  it("works through a backlog of more files than it may hold open, each once", async () => {
    const s = setup();
    const minute = join(s.dir, "audit", "20261130", "20261130-2133");
    mkdirSync(minute, { recursive: true });
    for (const [i, r] of CORPUS.slice(0, 40).entries())
      writeFileSync(
        join(minute, `20261130-2133${String(i).padStart(2, "0")}-x`),
        Buffer.concat([r, Buffer.from("\n")]),
      );
    const shipper = await s.start(["audit"], { maxOpenFiles: 3 });
    await shipped(s, 40);
    await until("every file done", () => shipper.stats().files === 0);
    await shipper.stop();
    expect(ids(await s.stream())).toEqual(ids(CORPUS.slice(0, 40)));
  });

  it("ships each file's record once, with or without a trailing newline, and not again after a restart", async () => {
    const s = setup();
    const root = join(s.dir, "audit");
    const minute = join(root, "20261130", "20261130-2133");
    mkdirSync(minute, { recursive: true });
    // ModSecurity ends its record with a newline; Coraza's concurrent writer does not.
    writeFileSync(
      join(minute, "20261130-213301-a"),
      Buffer.concat([CORPUS[0] as Buffer, Buffer.from("\n")]),
    );
    writeFileSync(join(minute, "20261130-213302-b"), CORPUS[1] as Buffer);
    let shipper = await s.start(["audit"]);
    await shipped(s, 2);
    writeFileSync(
      join(minute, "20261130-213303-c"),
      Buffer.concat([CORPUS[2] as Buffer, Buffer.from("\n")]),
    );
    await shipped(s, 3);
    await until("every file done", () => shipper.stats().files === 0);
    await shipper.stop();
    writeFileSync(join(minute, "20261130-213304-d"), CORPUS[3] as Buffer);
    shipper = await s.start(["audit"]);
    await shipped(s, 4);
    await new Promise((r) => setTimeout(r, 500));
    await shipper.stop();
    expect((await s.stream()).map((b) => b.toString("latin1")).sort()).toEqual(
      CORPUS.slice(0, 4)
        .map((b) => b.toString("latin1"))
        .sort(),
    );
  });
});
