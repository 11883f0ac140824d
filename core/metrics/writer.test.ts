/**
 * Unit tests of both writers against a local `node:http` server that answers like InfluxDB
 * would (204, 400 with a reason, 404, 5xx, 413, 429, hangs, dropped connections), so every
 * answer the real servers cannot be made to give on demand is covered. Real databases are in
 * `writers.int.test.ts`.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Logger } from "../lib/logger.ts";
import { createV1Writer } from "./influx-v1.ts";
import { createV2Writer } from "./influx-v2.ts";
import {
  errorText,
  type PointLine,
  type PointWriter,
  trimReason,
  type WriteOutcome,
  WriterConfigError,
  type WriterOptions,
} from "./writer.ts";

/** What the fake database answers to one request, given its lines. */
type HttpAnswer = { status: number; body?: string; headers?: Record<string, string> };
type Answer = HttpAnswer | "influx" | "hang" | "destroy";

interface Received {
  method: string;
  url: URL;
  headers: http.IncomingHttpHeaders;
  lines: string[];
}

interface FakeDb {
  url: string;
  received: Received[];
  /** Lines the fake "wrote": every good line of a request it answered 204 or partial 400. */
  stored: Set<string>;
  answer: (req: Received, n: number) => Answer;
  close(): Promise<void>;
}

/** A line carrying this marker is one the fake database cannot parse. */
const BAD = "BAD";

/**
 * InfluxDB's own behaviour: 204 when every line parses; otherwise 400 naming the first bad
 * line. With `partial` (1.x) the good lines of a refused request are written anyway; without
 * (2.x) nothing is.
 */
function influxLike(db: FakeDb, req: Received, partial: boolean): HttpAnswer {
  const bad = req.lines.filter((l) => l.includes(BAD));
  if (bad.length === 0 || partial) {
    for (const l of req.lines) if (!l.includes(BAD)) db.stored.add(l);
  }
  if (bad.length === 0) return { status: 204 };
  return {
    status: 400,
    body: JSON.stringify({ error: `unable to parse '${bad[0]}': missing fields` }),
    headers: { "content-type": "application/json" },
  };
}

const servers: FakeDb[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function fakeDb(answer?: FakeDb["answer"], partial = true): Promise<FakeDb> {
  const sockets = new Set<import("node:net").Socket>();
  const db: FakeDb = {
    url: "",
    received: [],
    stored: new Set(),
    answer: answer ?? (() => "influx"),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      let body = Buffer.concat(chunks);
      // The v2 client gzips bodies above 1,000 bytes.
      if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body);
      const received: Received = {
        method: req.method ?? "",
        url: new URL(req.url ?? "/", "http://fake"),
        headers: req.headers,
        lines: body.toString("utf8").split("\n"),
      };
      db.received.push(received);
      const given = db.answer(received, db.received.length);
      const a = given === "influx" ? influxLike(db, received, partial) : given;
      if (a === "hang") return;
      if (a === "destroy") {
        req.socket.destroy();
        return;
      }
      res.writeHead(a.status, a.headers);
      res.end(a.body);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  db.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  servers.push(db);
  return db;
}

/** Lines of the reference's shape with distinct timestamps; `bad` indices get a malformed line. */
function points(n: number, opts: { bad?: number[]; from?: number } = {}): PointLine[] {
  const bad = new Set(opts.bad ?? []);
  const from = opts.from ?? 0;
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    const line = bad.has(i)
      ? `waf_events,client_ip=${BAD}-${i} anomaly_score=`
      : `waf_events,client_ip=10.0.${(i >> 8) & 255}.${i & 255},rule_id=942100,severity_level=low anomaly_score=5i,severity=35i,response_code=403i ${1_700_000_000_000_000_000n + BigInt(i)}`;
    return { key: `1700000000000-${i}`, line };
  });
}

type LogFn = Logger["warn"];

function quietLogger() {
  return {
    debug: vi.fn<LogFn>(),
    info: vi.fn<LogFn>(),
    warn: vi.fn<LogFn>(),
    error: vi.fn<LogFn>(),
  };
}

const statuses = (outcomes: WriteOutcome[]) => outcomes.map((o) => o.status);
const count = (outcomes: WriteOutcome[], status: WriteOutcome["status"]) =>
  outcomes.filter((o) => o.status === status).length;

interface Flavour {
  name: string;
  create(opts: WriterOptions): PointWriter;
  path: string;
  /** Whether the server writes the good lines of a refused request (1.x) or none (2.x). */
  partial: boolean;
}

const flavours: Flavour[] = [
  { name: "v1 writer", create: createV1Writer, path: "/write", partial: true },
  { name: "v2 writer", create: createV2Writer, path: "/api/v2/write", partial: false },
];

describe.each(flavours)("$name", ({ create, path, partial }) => {
  async function setup(
    answer?: FakeDb["answer"],
    opts: Partial<WriterOptions> = {},
  ): Promise<{ db: FakeDb; writer: PointWriter; logger: ReturnType<typeof quietLogger> }> {
    const db = await fakeDb(answer, partial);
    const logger = quietLogger();
    const writer = create({
      url: db.url,
      org: "waf-org",
      bucket: "waf",
      timeoutMs: 5_000,
      logger,
      ...opts,
    });
    return { db, writer, logger };
  }

  it("accepts every line the server answered 204 for, in one request, in input order", async () => {
    const { db, writer, logger } = await setup(undefined, { token: "s3cret" });
    const lines = points(50);
    const outcomes = await writer.write(lines);
    expect(outcomes).toEqual(lines.map((l) => ({ key: l.key, status: "accepted" })));
    expect(db.received).toHaveLength(1);
    const [req] = db.received;
    expect(req?.method).toBe("POST");
    expect(req?.url.pathname).toBe(path);
    expect(req?.url.searchParams.get("precision")).toBe("ns");
    expect(req?.headers.authorization).toBe("Token s3cret");
    expect(req?.lines).toEqual(lines.map((l) => l.line));
    expect(db.stored.size).toBe(50);
    expect(logger.warn).not.toHaveBeenCalled();
    expect(logger.error).not.toHaveBeenCalled();
  });

  it("resolves an empty write with no request", async () => {
    const { db, writer } = await setup();
    expect(await writer.write([])).toEqual([]);
    expect(db.received).toHaveLength(0);
  });

  it("splits a large write into requests of at most maxLinesPerRequest lines", async () => {
    const { db, writer } = await setup(undefined, { maxLinesPerRequest: 100 });
    const outcomes = await writer.write(points(1_050));
    expect(count(outcomes, "accepted")).toBe(1_050);
    expect(db.received).toHaveLength(11);
    expect(Math.max(...db.received.map((r) => r.lines.length))).toBe(100);
    expect(db.stored.size).toBe(1_050);
  });

  it("splits by bytes too", async () => {
    const { db, writer } = await setup(undefined, { maxBytesPerRequest: 2_000 });
    const outcomes = await writer.write(points(40));
    expect(count(outcomes, "accepted")).toBe(40);
    expect(db.received.length).toBeGreaterThan(1);
    for (const r of db.received) expect(Buffer.byteLength(r.lines.join("\n"))).toBeLessThan(2_000);
  });

  it("rejects exactly the malformed lines, with the database's reason, and accepts the rest", async () => {
    const { db, writer, logger } = await setup();
    const lines = points(100, { bad: [17, 83] });
    const outcomes = await writer.write(lines);
    outcomes.forEach((o, i) => {
      expect(o.key).toBe(lines[i]?.key);
      if (i === 17 || i === 83) {
        expect(o).toEqual({
          key: lines[i]?.key,
          status: "rejected",
          reason: expect.stringContaining(`unable to parse '${lines[i]?.line}': missing fields`),
        });
      } else expect(o.status).toBe("accepted");
    });
    // What was called accepted is really there.
    for (const [i, o] of outcomes.entries()) {
      if (o.status === "accepted") expect(db.stored.has(lines[i]?.line as string)).toBe(true);
    }
    // Bisection: O(k log n) requests, not n.
    expect(db.received.length).toBeLessThanOrEqual(1 + 2 * 2 * Math.ceil(Math.log2(100)));
    expect(logger.error).not.toHaveBeenCalled();
  });

  it("rejects every line of a batch that is all malformed", async () => {
    const { writer } = await setup();
    const outcomes = await writer.write(points(8, { bad: [0, 1, 2, 3, 4, 5, 6, 7] }));
    expect(statuses(outcomes)).toEqual(Array(8).fill("rejected"));
  });

  it("rejects a whole request at once when the database says it dropped every point", async () => {
    const retention = (r: Received): Answer => {
      const old = r.lines.filter((l) => l.includes("OLD"));
      if (old.length === 0) return "influx";
      return {
        status: 400,
        body: JSON.stringify({
          error: `partial write: points beyond retention policy dropped=${old.length}`,
        }),
        headers: { "content-type": "application/json" },
      };
    };
    const aged = (l: PointLine) => ({
      key: l.key,
      line: l.line.replace("waf_events,", "waf_events,OLD=1,"),
    });
    const { db, writer } = await setup(retention);
    const outcomes = await writer.write(points(64).map(aged));
    expect(statuses(outcomes)).toEqual(Array(64).fill("rejected"));
    expect(outcomes[0]).toMatchObject({
      reason: expect.stringContaining("beyond retention policy"),
    });
    expect(db.received).toHaveLength(1);

    // Some dropped: which ones is unknown, so bisection finds them.
    const mixed = points(20).map((l, i) => (i % 7 === 3 ? aged(l) : l));
    const again = await writer.write(mixed);
    expect(statuses(again)).toEqual(
      mixed.map((l) => (l.line.includes("OLD") ? "rejected" : "accepted")),
    );
  });

  it("rejects a blank line without sending it", async () => {
    const { db, writer } = await setup();
    const outcomes = await writer.write([
      { key: "a", line: "   " },
      ...points(2),
      { key: "b", line: "" },
    ]);
    expect(statuses(outcomes)).toEqual(["rejected", "accepted", "accepted", "rejected"]);
    expect(db.received.flatMap((r) => r.lines)).toHaveLength(2);
  });

  it("reports a 5xx as failed for every line of that request, after maxAttempts attempts", async () => {
    const { db, writer, logger } = await setup(
      () => ({ status: 503, body: '{"error":"engine: cache maximum memory size exceeded"}' }),
      { maxAttempts: 3 },
    );
    const outcomes = await writer.write(points(30));
    expect(statuses(outcomes)).toEqual(Array(30).fill("failed"));
    expect(outcomes[0]).toMatchObject({ reason: expect.stringContaining("503") });
    expect(outcomes[0]).toMatchObject({ reason: expect.stringContaining("cache maximum memory") });
    expect(db.received).toHaveLength(3);
    expect(logger.warn).toHaveBeenCalledTimes(1);
  });

  it("retries a transient 5xx and then accepts", async () => {
    const { db, writer } = await setup((_r, n) => (n === 1 ? { status: 500 } : "influx"));
    const outcomes = await writer.write(points(10));
    expect(count(outcomes, "accepted")).toBe(10);
    expect(db.received).toHaveLength(2);
  });

  it("fails only the lines of the request that got the 5xx", async () => {
    const lines = points(12_000);
    const poisoned = lines[7_000]?.line as string;
    const { db, writer } = await setup(
      (r) => (r.lines.includes(poisoned) ? { status: 502 } : "influx"),
      { maxAttempts: 2 },
    );
    const outcomes = await writer.write(lines);
    // Default requests of 5,000 lines: the second one (lines 5,000-9,999) carried the poison.
    outcomes.forEach((o, i) => {
      expect(o.status).toBe(i >= 5_000 && i < 10_000 ? "failed" : "accepted");
    });
    expect(db.stored.size).toBe(7_000);
    for (const [i, o] of outcomes.entries()) {
      if (o.status === "accepted") expect(db.stored.has(lines[i]?.line as string)).toBe(true);
    }
  });

  it("treats 429 as transient and honours a short Retry-After", async () => {
    const { db, writer } = await setup((_r, n) =>
      n === 1 ? { status: 429, headers: { "retry-after": "0" } } : "influx",
    );
    expect(count(await writer.write(points(5)), "accepted")).toBe(5);
    expect(db.received).toHaveLength(2);
  });

  it("gives up at once when Retry-After is beyond the time budget", async () => {
    const { db, writer } = await setup(() => ({ status: 503, headers: { "retry-after": "60" } }), {
      timeoutMs: 1_000,
    });
    const outcomes = await writer.write(points(5));
    expect(statuses(outcomes)).toEqual(Array(5).fill("failed"));
    expect(outcomes[0]).toMatchObject({ reason: expect.stringContaining("503") });
    expect(db.received).toHaveLength(1);
  });

  it.each([
    [401, "authentication failed"],
    [403, "may not write"],
    [404, "not found"],
  ])(
    "never dead-letters good data because of a %i: failed, no bisection, one error log",
    async (status, words) => {
      const { db, writer, logger } = await setup(() => ({
        status,
        body: JSON.stringify({ error: `server says ${status}` }),
        headers: { "content-type": "application/json" },
      }));
      const outcomes = await writer.write(points(20, { bad: [3] }));
      expect(statuses(outcomes)).toEqual(Array(20).fill("failed"));
      expect(outcomes[0]).toMatchObject({ reason: expect.stringContaining(words) });
      expect(db.received).toHaveLength(1);
      expect(logger.error).toHaveBeenCalledTimes(1);
      expect(logger.error.mock.calls[0]?.[0]).toContain(words);
      expect(logger.error.mock.calls[0]?.[0]).toContain(`server says ${status}`);
    },
  );

  it("names the missing database or bucket", async () => {
    const { writer, logger } = await setup(() => ({ status: 404 }));
    await writer.write(points(2));
    expect(logger.error.mock.calls[0]?.[0]).toMatch(/(database|bucket) "waf"/);
  });

  it("splits a request the server finds too large (413), and fails a single line that is", async () => {
    const lines = points(64);
    const huge = lines[5]?.line as string;
    const { writer, db } = await setup((r) =>
      r.lines.length > 16 || r.lines.includes(huge) ? { status: 413 } : "influx",
    );
    const outcomes = await writer.write(lines);
    outcomes.forEach((o, i) => {
      expect(o.status).toBe(i === 5 ? "failed" : "accepted");
    });
    expect(db.stored.size).toBe(63);
  });

  it("fails every line when the server does not answer within timeoutMs", async () => {
    const { writer, logger } = await setup(() => "hang", { timeoutMs: 300 });
    const outcomes = await writer.write(points(10));
    expect(statuses(outcomes)).toEqual(Array(10).fill("failed"));
    expect(outcomes[0]).toMatchObject({ reason: expect.stringContaining("timed out") });
    expect(logger.warn).toHaveBeenCalledTimes(1);
  });

  it("fails every line when the connection is dropped", async () => {
    const { writer } = await setup(() => "destroy", { maxAttempts: 2 });
    expect(statuses(await writer.write(points(10)))).toEqual(Array(10).fill("failed"));
  });

  it("fails every line when nothing listens", async () => {
    const db = await fakeDb();
    await db.close();
    const writer = create({ url: db.url, org: "o", bucket: "waf", logger: quietLogger() });
    const outcomes = await writer.write(points(3));
    expect(statuses(outcomes)).toEqual(Array(3).fill("failed"));
    expect(outcomes[0]).toMatchObject({ reason: expect.stringContaining("ECONNREFUSED") });
  });

  it("never calls a 200 (not InfluxDB's 204) accepted", async () => {
    const { writer } = await setup(() => ({ status: 200, body: "<html>proxy login</html>" }));
    expect(statuses(await writer.write(points(3)))).toEqual(Array(3).fill("failed"));
  });

  it("fails writes after close, and close waits for the write in progress", async () => {
    const { writer } = await setup((_r, n) => (n === 1 ? { status: 500 } : "influx"));
    const pending = writer.write(points(4));
    await writer.close();
    expect(statuses(await pending)).toEqual(Array(4).fill("accepted"));
    const after = await writer.write(points(2));
    expect(after).toEqual([
      expect.objectContaining({ status: "failed", reason: "writer is closed" }),
      expect.objectContaining({ status: "failed", reason: "writer is closed" }),
    ]);
  });

  it("keeps the outcome of each line when keys repeat", async () => {
    const { writer } = await setup();
    const [a, b] = points(2, { bad: [1] });
    const outcomes = await writer.write([
      { key: "same", line: a?.line as string },
      { key: "same", line: b?.line as string },
    ]);
    expect(statuses(outcomes)).toEqual(["accepted", "rejected"]);
  });

  it("refuses unusable options at construction", () => {
    expect(() => create({ url: "not a url", org: "o", bucket: "b" })).toThrow(WriterConfigError);
    expect(() => create({ url: "http://x", org: "o", bucket: "" })).toThrow(WriterConfigError);
    expect(() => create({ url: "http://x", org: "o", bucket: "b", maxAttempts: 0 })).toThrow(
      WriterConfigError,
    );
  });
});

describe("v1 writer credentials", () => {
  it("sends user:password from the URL as u/p, never in the URL's authority", async () => {
    const db = await fakeDb();
    const url = db.url.replace("http://", "http://writer:p%40ss%3Aword@");
    const writer = createV1Writer({
      url: `${url}/`,
      org: "",
      bucket: "waf db",
      logger: quietLogger(),
    });
    expect(statuses(await writer.write(points(1)))).toEqual(["accepted"]);
    const [req] = db.received;
    expect(req?.url.pathname).toBe("/write");
    expect(req?.url.searchParams.get("db")).toBe("waf db");
    expect(req?.url.searchParams.get("u")).toBe("writer");
    expect(req?.url.searchParams.get("p")).toBe("p@ss:word");
    expect(req?.headers.authorization).toBeUndefined();
  });

  it("keeps a path prefix of the URL", async () => {
    const db = await fakeDb();
    const writer = createV1Writer({ url: `${db.url}/influx`, org: "", bucket: "waf" });
    await writer.write(points(1));
    expect(db.received[0]?.url.pathname).toBe("/influx/write");
  });
});

describe("v2 writer requests", () => {
  it("names org and bucket and never lets the client flush on its own", async () => {
    const db = await fakeDb(undefined, false);
    const writer = createV2Writer({
      url: db.url,
      org: "waf org",
      bucket: "waf",
      logger: quietLogger(),
    });
    // Above the client's own default batch (1,000 lines): still one request per 5,000.
    const outcomes = await writer.write(points(4_500));
    expect(count(outcomes, "accepted")).toBe(4_500);
    expect(db.received).toHaveLength(1);
    expect(db.received[0]?.url.searchParams.get("org")).toBe("waf org");
    expect(db.received[0]?.url.searchParams.get("bucket")).toBe("waf");
  });
});

describe("helpers", () => {
  it("reads InfluxDB 1.x and 2.x error bodies", () => {
    expect(errorText('{"error":"unable to parse"}')).toBe("unable to parse");
    expect(errorText('{"code":"invalid","message":"bad timestamp"}')).toBe("bad timestamp");
    expect(errorText(" plain text \n")).toBe("plain text");
    expect(errorText("{not json")).toBe("{not json");
  });

  it("trims reasons to one line of at most 300 characters", () => {
    expect(trimReason("a\n  b")).toBe("a b");
    expect(trimReason("x".repeat(1_000))).toHaveLength(300);
  });
});
