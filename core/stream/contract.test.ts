import { describe, expect, it } from "vitest";
import {
  MAX_ESCAPE_FACTOR,
  REQUEST_OVERHEAD_BYTES,
  requestBytes,
  requestPayload,
  type StreamRecord,
  serialiseRecord,
} from "./contract.ts";

const ascii = (s: string) => [...s].every((c) => c.charCodeAt(0) < 0x80);

describe("serialiseRecord", () => {
  it.each([
    ["plain JSON", '{"transaction":{"id":"a"}}'],
    ["quotes and backslashes", 'GET /a?x="1"\\2'],
    ["non-ASCII text", "/привет?q=é€"],
    ["a surrogate pair", "emoji 😀 here"],
    ["a lone surrogate", "cut \ud83d in half"],
    ["control characters", "\u0000\u0001\n\t\u001f"],
    ["raw bytes decoded as U+FFFD", "bad \ufffd\ufffd bytes"],
    ["the line separators JSON allows raw", "a\u2028b\u2029c"],
  ])("gives back %s exactly, as ASCII whose length is its size in bytes", (_what, data) => {
    const r: StreamRecord = { id: "1700000000000-3", data, deliveryCount: 2 };
    const part = serialiseRecord(r);
    expect(ascii(part)).toBe(true);
    expect(Buffer.byteLength(part)).toBe(part.length);
    expect(JSON.parse(part)).toEqual(r);
  });

  it("keeps originId and shard, and serialises an originId a producer wrote like any string", () => {
    const r = { id: "5-0", data: "x", deliveryCount: 1, originId: '1-0","id":"9-9', shard: 3 };
    expect(JSON.parse(serialiseRecord(r))).toEqual(r);
  });

  it("never grows a byte by more than MAX_ESCAPE_FACTOR", () => {
    const worst = "\u0001".repeat(1000);
    const part = serialiseRecord({ id: "1-0", data: worst, deliveryCount: 1 });
    expect(part.length).toBeGreaterThan(1000 * (MAX_ESCAPE_FACTOR - 1));
    expect(part.length).toBeLessThanOrEqual(1000 * MAX_ESCAPE_FACTOR + 128);
  });
});

describe("requestPayload", () => {
  it("is a ScoreRequest of the parts, REQUEST_OVERHEAD_BYTES plus a comma between parts around them", () => {
    const records = [
      { id: "1-0", data: "a", deliveryCount: 1 },
      { id: "2-0", data: "b\u00e9", deliveryCount: 1 },
    ];
    const parts = records.map(serialiseRecord);
    const bytes = REQUEST_OVERHEAD_BYTES + parts.reduce((n, p) => n + p.length, 0) + 1;
    const payload = requestPayload(parts, bytes);
    expect(payload.length).toBe(bytes);
    expect(JSON.parse(payload.toString("utf8"))).toEqual({ records });
    expect(JSON.parse(requestPayload([], REQUEST_OVERHEAD_BYTES).toString())).toEqual({
      records: [],
    });
  });

  it("counts what it writes: requestBytes of the parts' lengths", () => {
    const parts = ["a", "bc", "def"].map((data, i) =>
      serialiseRecord({ id: `${i}-0`, data, deliveryCount: 1 }),
    );
    const bytes = requestBytes(parts.map((p) => p.length));
    expect(requestPayload(parts, bytes).length).toBe(bytes);
    expect(requestBytes([])).toBe(REQUEST_OVERHEAD_BYTES);
  });

  it("refuses a miscounted size instead of sending a cut or padded body", () => {
    const parts = [serialiseRecord({ id: "1-0", data: "a", deliveryCount: 1 })];
    expect(() =>
      requestPayload(parts, REQUEST_OVERHEAD_BYTES + (parts[0] ?? "").length + 5),
    ).toThrow(/were counted/);
  });
});
