/**
 * `waf replay FILE|DIR… [--rate N]` (reference §7): puts every non-blank line of the files on the
 * stream, verbatim (bytes, not re-encoded text: invalid UTF-8 stays invalid, so the pipeline
 * sees exactly what a shipper would send), invalid records included. Gzipped files are
 * recognised by their magic bytes. Entries are pipelined in chunks; `--rate` paces them.
 */

import { createReadStream, type Stats } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import type { RedisClient } from "../core/lib/redis.ts";
import { sleep } from "../core/lib/time.ts";
import { type StreamShard, shardOfRecord } from "../core/stream/keys.ts";

/** One input: a file, or stdin (`-`). */
export interface ReplaySource {
  name: string;
  /** Bytes on disk (compressed size for .gz); undefined for stdin. */
  size: number | undefined;
  open(): Readable;
}

export interface ReplayProgress {
  /** Entries added so far. */
  sent: number;
  /** Bytes read from disk so far (compressed bytes for .gz). */
  bytesRead: number;
  /** Sum of the sources' sizes; undefined when one of them is stdin. */
  bytesTotal: number | undefined;
  /** The source being read. */
  source: string;
  startedAt: number;
}

export interface ReplayOptions {
  /** The stream's shards; a record goes to its transaction's (core/stream/keys.ts). */
  shards: readonly StreamShard[];
  field: string;
  /** Records per second; unset = as fast as Redis takes them. */
  rate?: number;
  /** XADD … MAXLEN ~ N, like a producer that trims its stream. */
  maxLen?: number;
  /** Entries per pipelined round trip (default 500; smaller when `rate` is low). */
  chunkSize?: number;
  /** Longest line accepted; longer ones are skipped and reported (default 64 MiB). */
  maxLineBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: ReplayProgress) => void;
  /** Diagnostics (skipped lines, skipped files). */
  warn?: (message: string) => void;
  now?: () => number;
  /** Waits for the rate limit (a fake clock in tests). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<unknown>;
}

export interface ReplayResult {
  sent: number;
  blank: number;
  oversize: number;
  sources: number;
  bytesRead: number;
  elapsedMs: number;
  /** Stopped early by the signal. */
  aborted: boolean;
}

/** Names of files a directory replay picks up: audit logs, rotated or gzipped ones included. */
const LOG_FILE = /\.(jsonl|ndjson|json|log)([._-]|$)|\.gz$/i;
const MAX_CHUNK_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_LINE = 64 * 1024 * 1024;

/** Raised with the count of entries already on the stream, so the user knows where it stopped. */
export class ReplayError extends Error {
  override readonly name = "ReplayError";
  constructor(
    message: string,
    readonly sent: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function fileSource(path: string, stats: Stats): ReplaySource {
  return { name: path, size: stats.size, open: () => createReadStream(path) };
}

/**
 * Expands the paths: files as given (any name), directories recursively to the files whose
 * name looks like an audit log, sorted; `-` is stdin. Hidden entries are skipped.
 */
export async function collectSources(
  paths: string[],
  warn: (m: string) => void = () => undefined,
): Promise<ReplaySource[]> {
  const out: ReplaySource[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      const path = join(dir, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.isFile() || e.isSymbolicLink()) {
        const st = await stat(path).catch(() => undefined);
        if (!st?.isFile()) continue;
        if (LOG_FILE.test(e.name)) out.push(fileSource(path, st));
        else warn(`skipping ${path} (not a .json/.jsonl/.ndjson/.log/.gz file)`);
      }
    }
  };
  for (const p of paths) {
    if (p === "-") {
      out.push({ name: "stdin", size: undefined, open: () => process.stdin });
      continue;
    }
    let st: Stats;
    try {
      st = await stat(p);
    } catch (err) {
      throw new ReplayError(`cannot read ${p}: ${(err as Error).message}`, 0, { cause: err });
    }
    if (st.isDirectory()) {
      const before = out.length;
      await walk(p);
      if (out.length === before) throw new ReplayError(`no audit-log files in ${p}`, 0);
    } else out.push(fileSource(p, st));
  }
  return out;
}

/** The bytes of a source, gunzipped when they start with the gzip magic number. */
async function* decoded(raw: Readable, onRaw: (n: number) => void): AsyncGenerator<Buffer> {
  const it = raw[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const rest = async function* (first: Buffer) {
    onRaw(first.length);
    yield first;
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      onRaw(next.value.length);
      yield next.value;
    }
  };
  try {
    const first = await it.next();
    if (first.done) return;
    const head = first.value;
    if (head[0] === 0x1f && head[1] === 0x8b) {
      const gunzip = pipeline(Readable.from(rest(head)), createGunzip(), () => undefined);
      try {
        for await (const chunk of gunzip) yield chunk as Buffer;
      } catch (err) {
        throw new Error(`invalid gzip data: ${(err as Error).message}`, { cause: err });
      }
    } else yield* rest(head);
  } finally {
    if (raw !== process.stdin) raw.destroy();
  }
}

const OVERSIZE = Symbol("oversize");

function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && (b < 0x0b || b > 0x0d)) return false;
  return true;
}

function withoutCr(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === 0x0d ? line.subarray(0, -1) : line;
}

/**
 * Splits bytes into lines (LF or CRLF), without decoding them. A UTF-8 byte-order mark at the
 * start is file metadata, not part of the first record, and is dropped.
 */
export async function* splitLines(
  chunks: AsyncIterable<Buffer>,
  maxLineBytes = DEFAULT_MAX_LINE,
): AsyncGenerator<Buffer | typeof OVERSIZE> {
  let parts: Buffer[] = [];
  let partLen = 0;
  let oversize = false;
  let first = true;
  for await (let chunk of chunks) {
    if (first) {
      first = false;
      if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
    }
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const piece = chunk.subarray(start, nl === -1 ? undefined : nl);
      if (!oversize) {
        parts.push(piece);
        partLen += piece.length;
        if (partLen > maxLineBytes) {
          oversize = true;
          parts = [];
        }
      }
      if (nl === -1) break;
      if (oversize) yield OVERSIZE;
      else yield withoutCr(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts));
      parts = [];
      partLen = 0;
      oversize = false;
      start = nl + 1;
    }
  }
  if (oversize) yield OVERSIZE;
  else if (partLen > 0) yield withoutCr(Buffer.concat(parts));
}

/** Sends every non-blank line of every source to the stream. */
export async function replay(
  redis: RedisClient,
  sources: ReplaySource[],
  opts: ReplayOptions,
): Promise<ReplayResult> {
  const { shards } = opts;
  const now = opts.now ?? Date.now;
  const startedAt = now();
  const rate = opts.rate;
  const chunkSize =
    opts.chunkSize ?? (rate ? Math.min(500, Math.max(1, Math.ceil(rate / 10))) : 500);
  const bytesTotal = sources.every((s) => s.size !== undefined)
    ? sources.reduce((n, s) => n + (s.size ?? 0), 0)
    : undefined;
  const warn = opts.warn ?? (() => undefined);
  let sent = 0;
  let blank = 0;
  let oversize = 0;
  let bytesRead = 0;
  let current = "";

  let batch: Buffer[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const entries = batch;
    batch = [];
    batchBytes = 0;
    // Each chunk leaves when the records before it and in it are due: N records take N / rate s.
    if (rate) {
      const due = startedAt + ((sent + entries.length) * 1000) / rate;
      await (opts.sleep ?? sleep)(due - now(), opts.signal);
    }
    // Each record to its shard (by its transaction id, as the shipper does); one pipeline per
    // shard, since a cluster pipeline must not span slots.
    const byKey = new Map<string, Buffer[]>();
    for (const line of entries) {
      const key = (shards[shardOfRecord(line, shards.length)] ?? shards[0])?.stream as string;
      byKey.set(key, [...(byKey.get(key) ?? []), line]);
    }
    const sends = [...byKey].map(async ([key, lines]) => {
      const p = redis.pipeline();
      for (const line of lines) {
        if (opts.maxLen) p.xadd(key, "MAXLEN", "~", opts.maxLen, "*", opts.field, line);
        else p.xadd(key, "*", opts.field, line);
      }
      let results: Array<[Error | null, unknown]>;
      try {
        results = ((await p.exec()) ?? []) as Array<[Error | null, unknown]>;
      } catch (err) {
        throw new ReplayError(`Redis failed: ${(err as Error).message}`, sent, { cause: err });
      }
      for (const [err] of results) {
        if (err) throw new ReplayError(`XADD ${key} failed: ${err.message}`, sent);
      }
      return results.length;
    });
    for (const n of await Promise.all(sends)) sent += n;
    opts.onProgress?.({ sent, bytesRead, bytesTotal, source: current, startedAt });
  };

  for (const source of sources) {
    if (opts.signal?.aborted) break;
    current = source.name === "stdin" ? "stdin" : basename(source.name);
    const input = decoded(source.open(), (n) => {
      bytesRead += n;
    });
    let lineNo = 0;
    try {
      for await (const line of splitLines(input, opts.maxLineBytes)) {
        lineNo++;
        if (line === OVERSIZE) {
          oversize++;
          warn(
            `${source.name}:${lineNo}: skipped, longer than ${opts.maxLineBytes ?? DEFAULT_MAX_LINE} bytes`,
          );
          continue;
        }
        if (isBlank(line)) {
          blank++;
          continue;
        }
        batch.push(line);
        batchBytes += line.length;
        if (batch.length >= chunkSize || batchBytes >= MAX_CHUNK_BYTES) await flush();
        if (opts.signal?.aborted) break;
      }
    } catch (err) {
      if (err instanceof ReplayError) throw err;
      throw new ReplayError(`${source.name}: ${(err as Error).message}`, sent, { cause: err });
    }
  }
  if (!opts.signal?.aborted) await flush();
  return {
    sent,
    blank,
    oversize,
    sources: sources.length,
    bytesRead,
    elapsedMs: now() - startedAt,
    aborted: opts.signal?.aborted ?? false,
  };
}

/** One line of progress for a terminal of `columns` characters. */
export function renderProgress(p: ReplayProgress, now: number, columns = 80): string {
  const elapsed = Math.max(1, now - p.startedAt);
  const rate = Math.round((p.sent * 1000) / elapsed);
  const stats = `${p.sent.toLocaleString("en-US")} records  ${rate.toLocaleString("en-US")}/s  ${p.source}`;
  if (!p.bytesTotal) return `replay ${stats}`.slice(0, columns - 1);
  const fraction = Math.min(1, p.bytesRead / p.bytesTotal);
  const pct = `${Math.floor(fraction * 100)}`.padStart(3);
  const barWidth = Math.max(10, Math.min(30, columns - stats.length - 15));
  const filled = Math.round(fraction * barWidth);
  const bar = `${"█".repeat(filled)}${"░".repeat(barWidth - filled)}`;
  return `replay ${bar} ${pct}%  ${stats}`.slice(0, columns - 1);
}

/** `Readable` of an array of lines, for tests. */
export function sourceOf(name: string, text: string | Buffer): ReplaySource {
  const buf = typeof text === "string" ? Buffer.from(text) : text;
  return { name, size: buf.length, open: () => Readable.from([buf]) };
}
