/**
 * `StreamReader` against a real Redis started by `local/services.ts` (reference §5). The scoring
 * function is replaced by a scripted `ScorerInvoker` (our own port, not ioredis): it parses the
 * body it is given, records every call and answers as each test says. Each test uses its own
 * stream, DLQ and group keys. Nothing here asserts speed: tests wait for outcomes, with generous
 * deadlines.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RunningService, startRedis } from "../../local/services.ts";
import { silentLogger } from "../lib/logger.ts";
import type { ScoreRequest, ScoreResponse, StreamRecord } from "./contract.ts";
import { FunctionInvocationError, InvokeUnavailableError } from "./errors.ts";
import { type ReaderOptions, type ScorerInvoker, StreamReader } from "./reader.ts";
import { RedisStream } from "./redis-stream.ts";

const DONE: ScoreResponse = { batchItemFailures: [], rejected: [] };

interface Call {
  records: StreamRecord[];
  /** Size of the request body in bytes. */
  bytes: number;
}

type Answer = (records: StreamRecord[]) => ScoreResponse | Promise<ScoreResponse>;

/** A scripted scoring function: parses each body, records the call, answers per test. */
class ScriptedScorer implements ScorerInvoker {
  readonly calls: Call[] = [];
  active = 0;
  maxActive = 0;

  constructor(public answer: Answer = () => DONE) {}

  async invoke(payload: Uint8Array): Promise<ScoreResponse> {
    // The contract: ASCII JSON (non-ASCII text travels escaped), so bytes = characters.
    const nonAscii = payload.findIndex((b) => b > 0x7f);
    if (nonAscii >= 0) throw new Error(`payload byte ${nonAscii} is not ASCII`);
    const { records } = JSON.parse(Buffer.from(payload).toString("latin1")) as ScoreRequest;
    this.calls.push({ records, bytes: payload.length });
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      return await this.answer(records);
    } finally {
      this.active--;
    }
  }

  /** Calls whose batch held the entry `id`. */
  callsWith(id: string): Call[] {
    return this.calls.filter((c) => c.records.some((r) => r.id === id));
  }

  seen(): Set<string> {
    return new Set(this.calls.flatMap((c) => c.records.map((r) => r.id)));
  }
}

/** Reports `ids` of this batch as failed, the rest as done. */
function failing(records: StreamRecord[], ids: ReadonlySet<string>): ScoreResponse {
  return {
    batchItemFailures: records.filter((r) => ids.has(r.id)).map((r) => ({ itemIdentifier: r.id })),
    rejected: [],
  };
}

async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function fieldsToObject(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i] as string] = fields[i + 1] as string;
  return out;
}

let service: RunningService;
let admin: Redis;

beforeAll(async () => {
  service = await startRedis();
  admin = new Redis(service.url);
});

afterAll(async () => {
  await admin?.quit();
  await service?.stop();
});

/** Readers and clients of the current test, stopped and closed after it. */
const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Keys {
  stream: string;
  dlq: string;
  group: string;
}

function freshKeys(): Keys {
  const id = randomUUID();
  return { stream: `test:${id}:stream`, dlq: `test:${id}:dlq`, group: "realtime-processor" };
}

type ReaderOverrides = Partial<Omit<ReaderOptions, "stream" | "invoker">> & { consumer?: string };

/** A reader of `keys` through these two clients, with the tests' short timings. */
function readerOn(
  redis: Redis,
  blockingRedis: Redis,
  keys: Keys,
  invoker: ScorerInvoker,
  o: ReaderOverrides = {},
): StreamReader {
  const { consumer = "reader-1", ...rest } = o;
  return new StreamReader({
    stream: new RedisStream({
      redis,
      blocking: blockingRedis,
      key: keys.stream,
      group: keys.group,
      consumer,
    }),
    invoker,
    logger: silentLogger,
    field: "event",
    batchSize: 10,
    batchWindowMs: 10,
    maxInFlight: 2,
    maxRetries: 3,
    maxRecordBytes: 1_048_576,
    dlqKey: keys.dlq,
    dlqMaxLen: 10_000,
    claimIdleMs: 1000,
    retryBaseMs: 10,
    blockMs: 50,
    ...rest,
  });
}

function newReader(keys: Keys, invoker: ScorerInvoker, o: ReaderOverrides = {}): StreamReader {
  const redis = new Redis(service.url);
  const blockingRedis = new Redis(service.url);
  const reader = readerOn(redis, blockingRedis, keys, invoker, o);
  cleanups.push(async () => {
    await reader.stop();
    await Promise.all([redis.quit(), blockingRedis.quit()]);
  });
  return reader;
}

function event(i: number, pad = 0): string {
  return JSON.stringify({ tx_id: `tx-${i}`, client_ip: "203.0.113.9", pad: "x".repeat(pad) });
}

/** XADDs `n` events and returns their ids, in order. */
async function addEvents(stream: string, n: number, pad = 0): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++)
    ids.push((await admin.xadd(stream, "*", "event", event(i, pad))) as string);
  return ids;
}

async function pendingIds(keys: Keys): Promise<string[]> {
  const rows = (await admin.xpending(keys.stream, keys.group, "-", "+", 10_000)) as Array<
    [string, string, number, number]
  >;
  return rows.map(([id]) => id);
}

/** True once every entry up to `lastId` was delivered to the group and none is pending. */
async function settled(keys: Keys, lastId: string): Promise<boolean> {
  const groups = (await admin.xinfo("GROUPS", keys.stream)) as unknown[][];
  for (const g of groups) {
    const info = fieldsToObject(g.map(String));
    if (info.name !== keys.group) continue;
    return info["last-delivered-id"] === lastId && info.pending === "0";
  }
  return false;
}

async function dlqEntries(keys: Keys): Promise<Array<Record<string, string>>> {
  const rows = (await admin.xrange(keys.dlq, "-", "+")) as Array<[string, string[]]>;
  return rows.map(([, fields]) => fieldsToObject(fields));
}

function last(ids: string[]): string {
  return ids[ids.length - 1] as string;
}

describe("StreamReader against a real Redis", () => {
  it("creates the consumer group at 0 if missing, so entries written before it started are processed", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 5);
    const scorer = new ScriptedScorer();
    const reader = newReader(keys, scorer);

    await reader.start();
    await eventually("every entry is acknowledged", () => settled(keys, last(ids)));

    expect([...scorer.seen()].sort()).toEqual([...ids].sort());
    const records = scorer.calls.flatMap((c) => c.records);
    expect(records.map((r) => r.data)).toEqual(ids.map((_, i) => event(i)));
    expect(records.every((r) => r.deliveryCount === 1)).toBe(true);
    expect(await pendingIds(keys)).toEqual([]);
    expect(await admin.xlen(keys.dlq)).toBe(0);
    expect(reader.stats().acked).toBe(5);
  });

  it("acknowledges only what the scorer reports done and retries batchItemFailures until they succeed", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 6);
    const failed = new Set([ids[1] as string, ids[4] as string]);
    let healed = false;
    const scorer = new ScriptedScorer((records) => (healed ? DONE : failing(records, failed)));
    const reader = newReader(keys, scorer, { maxRetries: 100 });

    await reader.start();
    await eventually(
      "the failed entries were retried and only they are pending",
      async () =>
        [...failed].every((id) => scorer.callsWith(id).length >= 3) &&
        JSON.stringify((await pendingIds(keys)).sort()) === JSON.stringify([...failed].sort()),
    );
    for (const id of failed) {
      const counts = scorer
        .callsWith(id)
        .map((c) => c.records.find((r) => r.id === id)?.deliveryCount ?? 0);
      expect(counts[0]).toBe(1);
      expect(Math.max(...counts)).toBeGreaterThan(1);
    }
    // The others went through once.
    for (const id of ids.filter((id) => !failed.has(id)))
      expect(scorer.callsWith(id)).toHaveLength(1);

    healed = true;
    await eventually("the retried entries are acknowledged", () => settled(keys, last(ids)));
    expect(await pendingIds(keys)).toEqual([]);
    expect(await admin.xlen(keys.dlq)).toBe(0);
  });

  it("dead-letters rejected records exactly once with reason and attempts, and acknowledges them", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 5);
    const rejected = new Set([ids[0] as string, ids[3] as string]);
    const scorer = new ScriptedScorer((records) => ({
      batchItemFailures: [],
      rejected: records
        .filter((r) => rejected.has(r.id))
        .map((r) => ({ itemIdentifier: r.id, reason: `invalid audit record ${r.id}` })),
    }));
    const reader = newReader(keys, scorer);

    await reader.start();
    await eventually("every entry is settled", () => settled(keys, last(ids)));
    // More traffic afterwards: the reader goes on looping, and must not dead-letter again.
    const more = await addEvents(keys.stream, 3);
    await eventually("the later entries are settled", () => settled(keys, last(more)));

    const dlq = await dlqEntries(keys);
    expect(dlq).toHaveLength(2);
    for (const id of rejected) {
      const entry = dlq.find((e) => e.entry_id === id);
      expect(entry).toMatchObject({
        reason: `invalid audit record ${id}`,
        attempts: "1",
        entry_id: id,
        stream: keys.stream,
        group: keys.group,
        event: event(ids.indexOf(id)),
      });
      expect(Number.isNaN(Date.parse(entry?.failed_at ?? ""))).toBe(false);
      expect(scorer.callsWith(id)).toHaveLength(1);
    }
    expect(await pendingIds(keys)).toEqual([]);
    expect(reader.stats().deadLettered).toBe(2);
  });

  it("dead-letters entries without the stream field and entries over maxRecordBytes without invoking the scorer", async () => {
    const keys = freshKeys();
    const before = await addEvents(keys.stream, 1);
    const noField = (await admin.xadd(keys.stream, "*", "payload", event(99))) as string;
    const bigEvent = event(100, 3000);
    const tooBig = (await admin.xadd(keys.stream, "*", "event", bigEvent)) as string;
    const after = await addEvents(keys.stream, 1);
    const scorer = new ScriptedScorer();
    const reader = newReader(keys, scorer, { maxRecordBytes: 2000 });

    await reader.start();
    await eventually("every entry is settled", () => settled(keys, last(after)));

    expect(scorer.seen()).toEqual(new Set([...before, ...after]));
    const dlq = await dlqEntries(keys);
    expect(dlq).toHaveLength(2);
    const missing = dlq.find((e) => e.entry_id === noField);
    expect(missing?.reason).toMatch(/no "event" field/);
    expect(missing?.event).toBeUndefined();
    const large = dlq.find((e) => e.entry_id === tooBig);
    expect(large?.reason).toMatch(/too large/);
    expect(large?.event).toBe(bigEvent);
    expect(await pendingIds(keys)).toEqual([]);
  });

  it("bisects a batch that fails as a whole until the poison record is alone, then dead-letters it after maxRetries solo attempts", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 16);
    const poison = ids[11] as string;
    const scorer = new ScriptedScorer((records) => {
      if (records.some((r) => r.id === poison))
        throw new FunctionInvocationError("Runtime.ExitError", "poison pill crashed the handler");
      return DONE;
    });
    const reader = newReader(keys, scorer, { batchSize: 16, maxRetries: 3 });

    await reader.start();
    await eventually("every entry is settled", () => settled(keys, last(ids)));

    const poisonCalls = scorer.callsWith(poison).map((c) => c.records.length);
    expect(poisonCalls).toEqual([16, 8, 4, 2, 1, 1, 1]);
    const succeeded = new Set(
      scorer.calls
        .filter((c) => !c.records.some((r) => r.id === poison))
        .flatMap((c) => c.records.map((r) => r.id)),
    );
    expect(succeeded).toEqual(new Set(ids.filter((id) => id !== poison)));
    const dlq = await dlqEntries(keys);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]).toMatchObject({ entry_id: poison, attempts: "3", event: event(11) });
    expect(dlq[0]?.reason).toContain("poison pill crashed the handler");
    expect(await pendingIds(keys)).toEqual([]);
  });

  it("charges no record for an outage in which the scorer is unavailable", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 8);
    let calls = 0;
    const scorer = new ScriptedScorer(() => {
      if (++calls <= 4) throw new InvokeUnavailableError("Rate Exceeded.");
      return DONE;
    });
    const reader = newReader(keys, scorer, { maxRetries: 2 });

    await reader.start();
    await eventually("every entry is settled", () => settled(keys, last(ids)));

    expect(scorer.calls.length).toBeGreaterThan(4);
    expect(await admin.xlen(keys.dlq)).toBe(0);
    expect(reader.stats().deadLettered).toBe(0);
    expect(reader.stats().acked).toBe(8);
    expect(await pendingIds(keys)).toEqual([]);
  });

  it("charges no record for an outage in which the scorer fails every record of every batch", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 8);
    let calls = 0;
    const scorer = new ScriptedScorer((records) =>
      ++calls <= 4 ? failing(records, new Set(records.map((r) => r.id))) : DONE,
    );
    const reader = newReader(keys, scorer, { maxRetries: 2 });

    await reader.start();
    await eventually("every entry is settled", () => settled(keys, last(ids)));

    expect(scorer.calls.length).toBeGreaterThan(4);
    expect(await admin.xlen(keys.dlq)).toBe(0);
    expect(reader.stats().acked).toBe(8);
    expect(await pendingIds(keys)).toEqual([]);
  });

  it("counts a record's failure beside successes: with maxRetries 1 it is dead-lettered while the rest are acked", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 5);
    const bad = ids[2] as string;
    const scorer = new ScriptedScorer((records) => failing(records, new Set([bad])));
    const reader = newReader(keys, scorer, { maxRetries: 1 });

    await reader.start();
    await eventually("every entry is settled", () => settled(keys, last(ids)));

    const dlq = await dlqEntries(keys);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]).toMatchObject({ entry_id: bad, attempts: "1" });
    expect(dlq[0]?.reason).toMatch(/failed/);
    expect(reader.stats().acked).toBe(4);
    expect(await pendingIds(keys)).toEqual([]);
  });

  it("dead-letters a record the scorer fails maxRetries times while it scores the rest", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 5);
    const bad = ids[2] as string;
    const scorer = new ScriptedScorer((records) => failing(records, new Set([bad])));
    const reader = newReader(keys, scorer, { maxRetries: 3 });

    await reader.start();
    // Other records keep flowing and succeeding: proof that the record, not the scorer, fails.
    const later: string[] = [];
    await eventually("the failing record is dead-lettered", async () => {
      later.push(...(await addEvents(keys.stream, 1)));
      return (await admin.xlen(keys.dlq)) > 0;
    });
    await eventually("every entry is settled", () => settled(keys, last(later)));

    const dlq = await dlqEntries(keys);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]).toMatchObject({ entry_id: bad, attempts: "3", event: event(2) });
    expect(dlq[0]?.reason).toMatch(/failed/);
    expect(scorer.callsWith(bad).length).toBeGreaterThanOrEqual(3);
    expect(reader.stats().acked).toBe(ids.length - 1 + later.length);
    expect(await pendingIds(keys)).toEqual([]);
  });

  it("respects maxInFlight: concurrent invocations never exceed it", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 12);
    const maxInFlight = 3;
    // A slow answer: the reader has ample time to open more invocations than it may.
    const scorer = new ScriptedScorer(async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      return DONE;
    });
    const reader = newReader(keys, scorer, { batchSize: 1, batchWindowMs: 0, maxInFlight });

    await reader.start();
    await eventually("every entry is settled", () => settled(keys, last(ids)));

    expect(scorer.maxActive).toBe(maxInFlight);
    expect(scorer.seen()).toEqual(new Set(ids));
  });

  it("splits batches by bytes: each invocation body stays within maxBatchBytes", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 12, 520);
    expect(Buffer.byteLength(event(0, 520))).toBeGreaterThan(550);
    const scorer = new ScriptedScorer();
    const reader = newReader(keys, scorer, { batchSize: 50, maxBatchBytes: 2000 });

    await reader.start();
    await eventually("every entry is settled", () => settled(keys, last(ids)));

    expect(scorer.calls.length).toBeGreaterThanOrEqual(4);
    for (const call of scorer.calls) expect(call.bytes).toBeLessThanOrEqual(2000);
    expect(scorer.calls.flatMap((c) => c.records.map((r) => r.id)).sort()).toEqual([...ids].sort());
  });

  it("claims entries left pending by a dead consumer after claimIdleMs and acknowledges them", async () => {
    const keys = freshKeys();
    await admin.xgroup("CREATE", keys.stream, keys.group, "0", "MKSTREAM");
    const ids = await addEvents(keys.stream, 4);
    const taken = (await admin.xreadgroup(
      "GROUP",
      keys.group,
      "dead-consumer",
      "COUNT",
      10,
      "STREAMS",
      keys.stream,
      ">",
    )) as Array<[string, Array<[string, string[]]>]>;
    expect(taken[0]?.[1]).toHaveLength(4);
    const scorer = new ScriptedScorer();
    const reader = newReader(keys, scorer, { claimIdleMs: 1000 });

    await reader.start();
    await eventually("the dead consumer's entries are acknowledged", () =>
      settled(keys, last(ids)),
    );

    expect(scorer.seen()).toEqual(new Set(ids));
    for (const r of scorer.calls.flatMap((c) => c.records))
      expect(r.deliveryCount).toBeGreaterThanOrEqual(2);
    expect(reader.stats().claimed).toBe(4);
    expect(await pendingIds(keys)).toEqual([]);
  });

  it("recovers its own pending entries after a restart under the same consumer name", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 5);
    const broken = new ScriptedScorer((records) =>
      failing(records, new Set(records.map((r) => r.id))),
    );
    const first = newReader(keys, broken, { consumer: "reader-r", claimIdleMs: 60_000 });
    await first.start();
    await eventually("the first reader was handed every entry", () => broken.seen().size === 5);
    await first.stop();
    expect(await pendingIds(keys)).toEqual(ids);

    const healthy = new ScriptedScorer();
    // claimIdleMs far away: only the own-pending recovery can pick the entries up.
    const second = newReader(keys, healthy, { consumer: "reader-r", claimIdleMs: 60_000 });
    await second.start();
    await eventually("the second reader acknowledged them", () => settled(keys, last(ids)));

    expect(healthy.seen()).toEqual(new Set(ids));
    for (const r of healthy.calls.flatMap((c) => c.records))
      expect(r.deliveryCount).toBeGreaterThanOrEqual(2);
    expect(second.stats().claimed).toBe(0);
    expect(await admin.xlen(keys.dlq)).toBe(0);
  });

  it("stop() waits for in-flight invocations to finish and acknowledges them", async () => {
    const keys = freshKeys();
    const ids = await addEvents(keys.stream, 3);
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const scorer = new ScriptedScorer(async () => {
      await gate;
      return DONE;
    });
    const reader = newReader(keys, scorer, { batchSize: 10 });
    await reader.start();
    await eventually("the batch is in flight", () => scorer.active === 1);

    let stopped = false;
    const stopping = reader.stop().then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(stopped).toBe(false);
    open();
    await stopping;

    // No polling: stop() resolved, so the acknowledgements are already done.
    expect(await pendingIds(keys)).toEqual([]);
    expect(await settled(keys, last(ids))).toBe(true);
    expect(reader.stats().acked).toBe(3);
  });

  it("stop() ends within its timeout when Redis is gone for good (the read it waits on never settles)", async () => {
    const gone = await startRedis();
    const redis = new Redis(gone.url);
    const blockingRedis = new Redis(gone.url);
    for (const c of [redis, blockingRedis]) c.on("error", () => undefined);
    cleanups.push(async () => {
      redis.disconnect();
      blockingRedis.disconnect();
    });
    const reader = readerOn(
      redis,
      blockingRedis,
      freshKeys(),
      new ScriptedScorer(async () => DONE),
    );
    await reader.start();
    await gone.stop();
    // Blocked reads now wait in the client's offline queue for a Redis that never returns.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const started = Date.now();
    await reader.stop(1_000);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("dead-letters an entry exactly once when two readers of the group both reject it", async () => {
    const keys = freshKeys();
    const [id] = await addEvents(keys.stream, 1);
    const reject = (records: StreamRecord[]): ScoreResponse => ({
      batchItemFailures: [],
      rejected: records.map((r) => ({ itemIdentifier: r.id, reason: "not an audit record" })),
    });
    let slowAnswered = false;
    // Reader A holds the entry until reader B has claimed and dead-lettered it, then rejects it too.
    const slow = new ScriptedScorer(async (records) => {
      await eventually("the other reader dead-lettered the entry", async () => {
        return (await admin.xlen(keys.dlq)) >= 1;
      });
      slowAnswered = true;
      return reject(records);
    });
    const fast = new ScriptedScorer(reject);
    const a = newReader(keys, slow, { consumer: "reader-a", claimIdleMs: 60_000 });
    await a.start();
    await eventually("reader A is scoring the entry", () => slow.active === 1);

    const b = newReader(keys, fast, { consumer: "reader-b", claimIdleMs: 300 });
    await b.start();
    await eventually("reader A answered", () => slowAnswered);
    await a.stop();

    expect(fast.seen()).toEqual(new Set([id]));
    const dlq = await dlqEntries(keys);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]).toMatchObject({ entry_id: id, consumer: "reader-b" });
    expect(a.stats().deadLettered).toBe(0);
    expect(b.stats().deadLettered).toBe(1);
    expect(await pendingIds(keys)).toEqual([]);
  });

  it("passes a redriven record's origin_id to the scorer and keeps it when dead-lettering it again", async () => {
    const keys = freshKeys();
    const id = (await admin.xadd(
      keys.stream,
      "*",
      "event",
      event(1),
      "origin_id",
      "1700000000000-7",
    )) as string;
    const scorer = new ScriptedScorer((records) => ({
      batchItemFailures: [],
      rejected: records.map((r) => ({ itemIdentifier: r.id, reason: "still bad" })),
    }));
    const reader = newReader(keys, scorer);
    await reader.start();
    await eventually("the entry is settled", () => settled(keys, id));
    expect(scorer.calls[0]?.records[0]).toMatchObject({ id, originId: "1700000000000-7" });
    expect((await dlqEntries(keys))[0]).toMatchObject({
      entry_id: id,
      origin_id: "1700000000000-7",
    });
  });
});
