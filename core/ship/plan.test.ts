import { describe, expect, it } from "vitest";
import {
  type FileCheckpoint,
  fingerprint,
  headMatches,
  parseState,
  StateError,
  serializeState,
} from "./checkpoint.ts";
import { type Candidate, checkTail, type Discovered, decideStart, idleAction } from "./plan.ts";

const rec = (id: string) => `{"transaction":{"unique_id":"${id}","client_ip":"203.0.113.9"}}\n`;
/** A log of records r0..r(n-1) for one "generation" g. */
const log = (g: string, n: number) =>
  Buffer.from(Array.from({ length: n }, (_, i) => rec(`${g}-${i}`)).join(""));

function discovered(key: string, content: Buffer, concurrent = false): Discovered {
  return {
    key,
    path: `/logs/${key}`,
    size: content.length,
    head: content.subarray(0, 4096),
    concurrent,
  };
}

function checkpointOf(key: string, content: Buffer, offset: number): FileCheckpoint {
  return { key, path: `/logs/${key}`, offset, ...fingerprint(content, offset) };
}

function candidateOf(key: string, content: Buffer, offset: number, withHead = true): Candidate {
  return {
    ...checkpointOf(key, content, offset),
    ...(withHead ? { head: content.subarray(0, 4096) } : {}),
  };
}

const base = { now: 10_000, settleMs: 2_000 };

describe("decideStart", () => {
  it("starts a file never seen before at 0", () => {
    expect(decideStart(discovered("1:10", log("a", 3)), { ...base, candidates: [] })).toEqual({
      action: "start",
      offset: 0,
      reason: "new",
    });
  });

  it("resumes a checkpointed file at its offset when its first bytes still match", () => {
    const content = log("a", 50);
    const cp = checkpointOf("1:10", content, 1000);
    expect(
      decideStart(discovered("1:10", content), { ...base, checkpoint: cp, candidates: [] }),
    ).toEqual({
      action: "start",
      offset: 1000,
      reason: "checkpoint",
    });
  });

  it("starts again at 0 a checkpointed file that shrank below its offset (truncated)", () => {
    const before = log("a", 50);
    const cp = checkpointOf("1:10", before, before.length);
    const now = log("b", 2);
    expect(
      decideStart(discovered("1:10", now), { ...base, checkpoint: cp, candidates: [] }),
    ).toMatchObject({
      offset: 0,
      reason: "truncated",
    });
  });

  it("starts at 0 a file that kept its inode but not its content (truncated and grown, or inode reused)", () => {
    const before = log("a", 20);
    const cp = checkpointOf("1:10", before, before.length);
    const now = log("b", 80); // larger than the old offset: only the fingerprint can tell
    expect(
      decideStart(discovered("1:10", now), { ...base, checkpoint: cp, candidates: [] }),
    ).toMatchObject({
      offset: 0,
      reason: "replaced",
    });
  });

  it("ships a copytruncate copy from the offset acknowledged for the live file, not from 0", () => {
    const live = log("a", 60);
    const acked = rec("a-0").length * 40;
    const copy = live; // logrotate copied everything, including records not read yet
    for (const withHead of [true, false]) {
      expect(
        decideStart(discovered("1:11", copy), {
          ...base,
          candidates: [candidateOf("1:10", live, acked, withHead)],
        }),
      ).toEqual({ action: "start", offset: acked, reason: "copy", copyOf: "/logs/1:10" });
    }
  });

  it("waits while a copy is shorter than the acknowledged offset and still growing, then decides", () => {
    const live = log("a", 200);
    const acked = live.length;
    const partial = live.subarray(0, 5000);
    const c = [candidateOf("1:10", live, acked)];
    expect(decideStart(discovered("1:11", partial), { ...base, candidates: c })).toMatchObject({
      action: "defer",
    });
    // Grown to the offset: decided at once.
    expect(decideStart(discovered("1:11", live), { ...base, candidates: c })).toMatchObject({
      action: "start",
      offset: acked,
    });
    // Never grew: everything in it was already acknowledged.
    expect(
      decideStart(discovered("1:11", partial), {
        ...base,
        candidates: c,
        deferral: { size: partial.length, since: base.now - base.settleMs },
      }),
    ).toMatchObject({ action: "start", offset: partial.length, reason: "copy" });
  });

  it("waits on an empty new file (a copy may be starting), and ships it from 0 once it holds a record of its own", () => {
    const c = [candidateOf("1:10", log("a", 10), 500)];
    expect(
      decideStart(discovered("1:12", Buffer.alloc(0)), { ...base, candidates: c }),
    ).toMatchObject({
      action: "defer",
    });
    expect(
      decideStart(discovered("1:12", Buffer.alloc(0)), {
        ...base,
        candidates: c,
        deferral: { size: 0, since: 0 },
      }),
    ).toEqual({ action: "start", offset: 0, reason: "new" });
    expect(decideStart(discovered("1:12", log("b", 1)), { ...base, candidates: c })).toEqual({
      action: "start",
      offset: 0,
      reason: "new",
    });
  });

  it("never takes a different file for a copy, and ignores candidates with nothing acknowledged", () => {
    const c = [candidateOf("1:10", log("a", 10), 700), candidateOf("1:13", log("c", 10), 0)];
    expect(decideStart(discovered("1:11", log("b", 30)), { ...base, candidates: c })).toEqual({
      action: "start",
      offset: 0,
      reason: "new",
    });
  });

  it("takes the furthest acknowledged offset among files with the same beginning", () => {
    const live = log("a", 60);
    const c = [candidateOf("1:10", live, 3000), candidateOf("1:11", live, 1200)];
    expect(decideStart(discovered("1:12", live), { ...base, candidates: c })).toMatchObject({
      offset: 3000,
      copyOf: "/logs/1:10",
    });
  });

  it("starts Concurrent-log files at 0 unless checkpointed, without looking for copies", () => {
    const one = log("a", 1);
    const c = [candidateOf("1:10", one, one.length)];
    expect(decideStart(discovered("1:11", one, true), { ...base, candidates: c })).toMatchObject({
      offset: 0,
      reason: "new",
    });
    expect(
      decideStart(discovered("1:11", one, true), {
        ...base,
        candidates: [],
        checkpoint: { ...checkpointOf("1:11", one, one.length), done: true },
      }),
    ).toMatchObject({ offset: one.length, reason: "checkpoint" });
  });
});

describe("checkTail", () => {
  const head = log("a", 3);
  it("sees a shrink below the read position as truncation", () => {
    expect(checkTail(500, 100, head, undefined)).toBe("truncated");
  });
  it("sees changed first bytes as a replaced generation even when the file is larger", () => {
    expect(checkTail(100, 5000, head, log("b", 80).subarray(0, 4096))).toBe("replaced");
    expect(checkTail(100, 5000, head, log("a", 80).subarray(0, 4096))).toBe("ok");
    expect(checkTail(100, 5000, Buffer.alloc(0), log("b", 80))).toBe("ok");
  });
});

describe("idleAction", () => {
  const opts = { settleMs: 2_000, closeInactiveMs: 10_000 };
  const f = {
    concurrent: false,
    listed: true,
    atEof: true,
    partial: 0,
    unacked: 0,
    lastChangeAt: 0,
    readPos: 100,
    lastSeenAt: 0,
  };
  it("keeps a file that is being read or has records in flight", () => {
    expect(idleAction({ ...f, atEof: false }, 99_999, opts)).toBe("keep");
    expect(idleAction({ ...f, unacked: 10 }, 99_999, opts)).toBe("keep");
    expect(idleAction(f, 5_000, opts)).toBe("keep");
  });
  it("closes a quiet Serial log but keeps its checkpoint; forgets one gone from the patterns", () => {
    expect(idleAction(f, 10_000, opts)).toBe("close");
    expect(idleAction({ ...f, partial: 7, unacked: 7 }, 10_000, opts)).toBe("close");
    expect(idleAction({ ...f, listed: false }, 10_000, opts)).toBe("forget");
    expect(idleAction({ ...f, listed: false, lastSeenAt: 5_000 }, 10_000, opts)).toBe("keep");
  });
  it("flushes a quiet Concurrent file's unterminated record, then marks it done", () => {
    const c = { ...f, concurrent: true };
    expect(idleAction({ ...c, partial: 10, unacked: 10 }, 1_000, opts)).toBe("keep");
    expect(idleAction({ ...c, partial: 10, unacked: 10 }, 2_000, opts)).toBe("flush");
    expect(idleAction({ ...c, unacked: 10 }, 2_000, opts)).toBe("keep");
    expect(idleAction(c, 0, opts)).toBe("done");
    expect(idleAction({ ...c, listed: false }, 0, opts)).toBe("forget");
  });
  it("does not take an empty Concurrent file (created, not written yet) for done", () => {
    expect(idleAction({ ...f, concurrent: true, readPos: 0 }, 0, opts)).toBe("keep");
  });
});

describe("checkpoint file", () => {
  it("round-trips, and refuses what is not a checkpoint", () => {
    const content = log("a", 5);
    const files = [
      checkpointOf("2049:131", content, 250),
      { ...checkpointOf("2049:132", content, content.length), done: true },
    ];
    expect(parseState(serializeState(files, 0))).toEqual(files);
    expect(parseState(serializeState([], 0))).toEqual([]);
    expect(() => parseState("{")).toThrow(StateError);
    expect(() => parseState('{"version":2,"files":[]}')).toThrow(StateError);
    expect(() =>
      parseState(
        '{"version":1,"files":[{"key":"1:2","path":"x","offset":1,"head_len":5,"head_sha1":"00"}]}',
      ),
    ).toThrow(StateError);
  });
  it("fingerprints only acknowledged bytes, at most HEAD_BYTES", () => {
    const content = log("a", 200);
    expect(fingerprint(content, 10).headLen).toBe(10);
    expect(fingerprint(content, 100_000).headLen).toBe(4096);
    expect(headMatches(fingerprint(content, 300), content)).toBe(true);
    expect(headMatches(fingerprint(content, 300), content.subarray(0, 299))).toBe(false);
  });
});
