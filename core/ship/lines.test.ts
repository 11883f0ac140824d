import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type LineSink, LineSplitter, OVERSIZE_HEAD } from "./lines.ts";

type Out =
  | { kind: "record"; line: string; end: number }
  | { kind: "blank"; end: number }
  | { kind: "oversize"; start: number; end: number; bytes: number; head: string };

function collector(): { sink: LineSink; out: Out[] } {
  const out: Out[] = [];
  return {
    out,
    sink: {
      record: (line, end) => out.push({ kind: "record", line: line.toString("latin1"), end }),
      blank: (end) => out.push({ kind: "blank", end }),
      oversize: (start, end, bytes, head) =>
        out.push({ kind: "oversize", start, end, bytes, head: head.toString("latin1") }),
    },
  };
}

function split(chunks: Array<string | Buffer>, max = 100, offset = 0) {
  const s = new LineSplitter(max, offset);
  const c = collector();
  for (const ch of chunks) s.feed(typeof ch === "string" ? Buffer.from(ch, "latin1") : ch, c.sink);
  return { ...c, splitter: s };
}

/** What a whole-file split must give: the reference the chunked splitter is checked against. */
function reference(data: Buffer, max: number): Out[] {
  const out: Out[] = [];
  let start = 0;
  for (let nl = data.indexOf(10); nl !== -1; nl = data.indexOf(10, start)) {
    let line = data.subarray(start, nl);
    if (line.at(-1) === 13) line = line.subarray(0, -1);
    if (start === 0 && line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf)
      line = line.subarray(3);
    const end = nl + 1;
    if (line.length > max)
      out.push({
        kind: "oversize",
        start,
        end,
        bytes: line.length,
        head: line.subarray(0, OVERSIZE_HEAD).toString("latin1"),
      });
    else if (/^[ \t\n\v\f\r]*$/.test(line.toString("latin1"))) out.push({ kind: "blank", end });
    else out.push({ kind: "record", line: line.toString("latin1"), end });
    start = end;
  }
  return out;
}

describe("LineSplitter", () => {
  it("emits complete lines with the offset just past their newline", () => {
    const { out } = split(['{"a":1}\n{"b"', ':2}\n{"c":'], 100, 1000);
    expect(out).toEqual([
      { kind: "record", line: '{"a":1}', end: 1008 },
      { kind: "record", line: '{"b":2}', end: 1016 },
    ]);
  });

  it("never emits a partial last line, and counts it as pending", () => {
    const { out, splitter } = split(['{"a":1}\n{"b":2'], 100);
    expect(out).toHaveLength(1);
    expect(splitter.pending).toBe(6);
    expect(splitter.position).toBe(14);
  });

  it("strips CR of CRLF and a byte-order mark at the start of the file only", () => {
    const { out } = split(["\ufeff{}\r\n\ufeff{}\n"].map((s) => Buffer.from(s, "utf8")));
    expect(out.map((o) => (o.kind === "record" ? o.line : o.kind))).toEqual([
      "{}",
      Buffer.from("\ufeff{}", "utf8").toString("latin1"),
    ]);
  });

  it("passes non-UTF-8 bytes through unchanged", () => {
    const raw = Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc3, 0x28, 0x22, 0x7d]);
    const s = new LineSplitter(100, 0);
    const got: Buffer[] = [];
    s.feed(Buffer.concat([raw, Buffer.from("\n")]), {
      record: (l) => got.push(Buffer.from(l)),
      blank: () => undefined,
      oversize: () => undefined,
    });
    expect(got).toEqual([raw]);
  });

  it("reports blank lines so the offset can move past them", () => {
    const { out } = split(["\n  \t\r\n{}\n"]);
    expect(out).toEqual([
      { kind: "blank", end: 1 },
      { kind: "blank", end: 6 },
      { kind: "record", line: "{}", end: 9 },
    ]);
  });

  it("skips a line over the limit without holding it, then goes on", () => {
    const big = "x".repeat(2000);
    const chunks = ["{}\n", big.slice(0, 700), big.slice(700, 1500), `${big.slice(1500)}\r\n{}\n`];
    const { out, splitter } = split(chunks, 100);
    expect(out).toEqual([
      { kind: "record", line: "{}", end: 3 },
      { kind: "oversize", start: 3, end: 2005, bytes: 2000, head: big.slice(0, OVERSIZE_HEAD) },
      { kind: "record", line: "{}", end: 2008 },
    ]);
    expect(splitter.pending).toBe(0);
  });

  it("holds at most the limit of an unfinished line, however long it grows", () => {
    const s = new LineSplitter(100, 0);
    const { sink } = collector();
    s.feed(Buffer.from("{}\n"), sink);
    s.feed(Buffer.from("z".repeat(50)), sink);
    expect(s.held).toBe(50);
    for (let i = 0; i < 100; i++) s.feed(Buffer.from("z".repeat(1000)), sink);
    expect(s.pending).toBe(100_050);
    expect(s.held).toBe(OVERSIZE_HEAD);
    expect(s.lineStart).toBe(3);
  });

  it("keeps a line of exactly the limit (a CR does not count)", () => {
    const line = "y".repeat(100);
    expect(split([`${line}\r`, "\n"], 100).out).toEqual([{ kind: "record", line, end: 102 }]);
    expect(split([`${line}y\n`], 100).out[0]?.kind).toBe("oversize");
  });

  it("flushPartial emits the held bytes as the file's last record", () => {
    const { sink, out } = collector();
    const s = new LineSplitter(100, 0);
    s.feed(Buffer.from('{"one":"record"}'), sink);
    expect(out).toEqual([]);
    expect(s.flushPartial(sink)).toBe(true);
    expect(out).toEqual([{ kind: "record", line: '{"one":"record"}', end: 16 }]);
    expect(s.flushPartial(sink)).toBe(false);
  });

  it("gives the same lines and offsets however the bytes are chunked (property)", () => {
    const byte = fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
      { weight: 2, arbitrary: fc.constantFrom(0x0a, 0x0d, 0x20, 0x09) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
    );
    fc.assert(
      fc.property(
        fc.array(byte, { maxLength: 400 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 1, max: 40 }),
        (bytes, cuts, max) => {
          const data = Buffer.from(bytes);
          const chunks: Buffer[] = [];
          let at = 0;
          for (let i = 0; at < data.length; i++) {
            const n = cuts[i % cuts.length] as number;
            chunks.push(data.subarray(at, at + n));
            at += n;
          }
          const { out, splitter } = split(chunks, max);
          expect(out).toEqual(reference(data, max));
          const lastNl = data.lastIndexOf(10);
          expect(splitter.pending).toBe(data.length - (lastNl + 1));
        },
      ),
      { numRuns: 2000 },
    );
  });
});
