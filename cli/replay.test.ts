import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { collectSources, renderProgress, splitLines } from "./replay.ts";

async function lines(chunks: Buffer[], max?: number) {
  const out: Array<string | symbol> = [];
  for await (const l of splitLines(Readable.from(chunks), max))
    out.push(typeof l === "symbol" ? l : l.toString("latin1"));
  return out;
}

describe("splitLines", () => {
  it("splits LF and CRLF lines across chunk boundaries without decoding them", async () => {
    const out = await lines([
      Buffer.from("a\r\nb"),
      Buffer.from("c\n\n"),
      Buffer.from([0xff, 0x0a, 0x64]),
    ]);
    expect(out).toEqual(["a", "bc", "", "\xff", "d"]);
  });

  it("drops a UTF-8 byte-order mark at the start only", async () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const out = await lines([Buffer.concat([bom, Buffer.from("{}\n"), bom, Buffer.from("x\n")])]);
    expect(out).toEqual(["{}", "\xef\xbb\xbfx"]);
  });

  it("reports a line longer than the limit instead of holding it in memory", async () => {
    const out = await lines(
      [
        Buffer.from("ok\n"),
        Buffer.from("x".repeat(50)),
        Buffer.from("y".repeat(50)),
        Buffer.from("\nok2"),
      ],
      60,
    );
    expect(out[0]).toBe("ok");
    expect(typeof out[1]).toBe("symbol");
    expect(out[2]).toBe("ok2");
  });
});

describe("collectSources", () => {
  it("takes audit-log files of a directory recursively, sorted, skipping others", async () => {
    const dir = mkdtempSync(join(tmpdir(), "waf-replay-"));
    mkdirSync(join(dir, "sub"));
    mkdirSync(join(dir, ".hidden"));
    writeFileSync(join(dir, "b.jsonl"), "{}\n");
    writeFileSync(join(dir, "a.log"), "{}\n");
    writeFileSync(join(dir, "sub", "modsec_audit.json-2025-07-21_153553.gz"), gzipSync("{}\n"));
    writeFileSync(join(dir, "README.md"), "# not a log\n");
    writeFileSync(join(dir, ".hidden", "x.jsonl"), "{}\n");
    const skipped: string[] = [];
    const sources = await collectSources([dir], (m) => skipped.push(m));
    expect(sources.map((s) => s.name.slice(dir.length + 1))).toEqual([
      "a.log",
      "b.jsonl",
      "sub/modsec_audit.json-2025-07-21_153553.gz",
    ]);
    expect(skipped.join("\n")).toContain("README.md");
  });

  it("refuses a path that does not exist and a directory without logs", async () => {
    await expect(collectSources(["/nonexistent/file.jsonl"])).rejects.toThrow(/cannot read/);
    const empty = mkdtempSync(join(tmpdir(), "waf-replay-empty-"));
    await expect(collectSources([empty])).rejects.toThrow(/no audit-log files/);
  });
});

describe("renderProgress", () => {
  it("draws a bar from bytes read, with the count and rate", () => {
    const line = renderProgress(
      { sent: 1500, bytesRead: 50, bytesTotal: 100, source: "a.jsonl", startedAt: 0 },
      1000,
      100,
    );
    expect(line).toMatch(/^replay [█░]+ {2}50% {2}1,500 records {2}1,500\/s {2}a\.jsonl$/);
    expect(line.length).toBeLessThan(100);
  });

  it("shows no bar when the size is unknown (stdin)", () => {
    expect(
      renderProgress(
        { sent: 3, bytesRead: 9, bytesTotal: undefined, source: "stdin", startedAt: 0 },
        1000,
      ),
    ).toBe("replay 3 records  3/s  stdin");
  });
});
