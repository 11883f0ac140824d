import { describe, expect, it } from "vitest";
import { AckFrontier, BatchBuilder } from "./batch.ts";

const b = (s: string) => Buffer.from(s);

describe("BatchBuilder", () => {
  it("is due when full by count or bytes, or when its first entry waited the window", () => {
    const builder = new BatchBuilder<string>({ maxRecords: 3, maxBytes: 100 });
    expect(builder.due(0, 50)).toBe(false);
    builder.addRecord("a", 0, b("{}"), 3, 1000);
    expect(builder.due(1049, 50)).toBe(false);
    expect(builder.due(1050, 50)).toBe(true);
    builder.addRecord("a", 0, b("{}"), 6, 1010);
    builder.addRecord("a", 0, b("{}"), 9, 1020);
    expect(builder.due(1020, 50)).toBe(true);
    const bytes = new BatchBuilder<string>({ maxRecords: 1000, maxBytes: 10 });
    bytes.addRecord("a", 0, b("x".repeat(10)), 11, 0);
    expect(bytes.full).toBe(true);
  });

  it("keeps one mark per run of the same file and generation, the furthest end", () => {
    const builder = new BatchBuilder<string>({ maxRecords: 10, maxBytes: 1000 });
    builder.addRecord("a", 0, b("1"), 2, 0);
    builder.mark("a", 0, 5, 0); // a blank line
    builder.addRecord("b", 0, b("2"), 2, 0);
    builder.addRecord("a", 1, b("3"), 2, 0); // a new generation of a (truncated)
    const batch = builder.take();
    expect(batch?.records.map(String)).toEqual(["1", "2", "3"]);
    expect(batch?.marks).toEqual([
      { file: "a", gen: 0, end: 5 },
      { file: "b", gen: 0, end: 2 },
      { file: "a", gen: 1, end: 2 },
    ]);
    expect(builder.take()).toBeUndefined();
  });

  it("cuts a batch of marks only (lines that ship nothing still move the offset)", () => {
    const builder = new BatchBuilder<string>({ maxRecords: 10, maxBytes: 1000 });
    builder.mark("a", 0, 1, 0);
    expect(builder.take()).toMatchObject({ records: [], marks: [{ end: 1 }] });
  });
});

describe("AckFrontier", () => {
  it("releases batches only in cut order, however they finish", () => {
    const builder = new BatchBuilder<string>({ maxRecords: 1, maxBytes: 100 });
    const frontier = new AckFrontier<string>();
    const batches = [1, 2, 3].map((n) => {
      builder.addRecord("a", 0, b(String(n)), n, 0);
      const batch = builder.take();
      if (!batch) throw new Error("no batch");
      frontier.push(batch);
      return batch;
    });
    const [one, two, three] = batches as [
      (typeof batches)[0],
      (typeof batches)[0],
      (typeof batches)[0],
    ];
    expect(frontier.bytes).toBe(3);
    expect(frontier.settle(two)).toEqual([]);
    expect(frontier.settle(three)).toEqual([]);
    expect(frontier.settle(one).map((x) => x.seq)).toEqual([0, 1, 2]);
    expect(frontier.size).toBe(0);
  });
});
