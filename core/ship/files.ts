/**
 * The shipper's file-system adapter: expanding PATH arguments (files, globs, Concurrent-log
 * directories) into files with their identity, reading heads, opening files to follow, and
 * writing the checkpoint atomically. Everything that touches `node:fs` is here.
 */
import type { Dirent } from "node:fs";
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
} from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { HEAD_BYTES } from "./checkpoint.ts";
import { COMPRESSED, hasMagic, segmentMatcher, splitPattern } from "./glob.ts";

/** One PATH argument, classified once at start-up. */
export type ShipPath =
  | { kind: "file"; path: string }
  | { kind: "glob"; pattern: string; root: string; match: Array<(name: string) => boolean> }
  | { kind: "dir"; path: string };

/** A regular file a scan found. */
export interface Listed {
  path: string;
  /** `<device>:<inode>`. */
  key: string;
  size: number;
  /** Found under a Concurrent-log directory: one record per file. */
  concurrent: boolean;
}

/**
 * Classifies PATH arguments: a pattern with wildcards is a glob, an existing directory a
 * Concurrent-log directory, anything else a file (which may appear later).
 */
export async function classifyPaths(args: readonly string[]): Promise<ShipPath[]> {
  const out: ShipPath[] = [];
  for (const arg of args) {
    const abs = resolve(arg);
    if (abs.split("/").some(hasMagic)) {
      const { root, segments } = splitPattern(abs);
      out.push({ kind: "glob", pattern: abs, root, match: segments.map(segmentMatcher) });
      continue;
    }
    const st = await stat(abs).catch(() => undefined);
    out.push(st?.isDirectory() ? { kind: "dir", path: abs } : { kind: "file", path: abs });
  }
  return out;
}

export interface ScanOptions {
  /** Paths never shipped (the checkpoint, its temp and lock files). */
  exclude: ReadonlySet<string>;
  /**
   * For Concurrent-log files: the key of a path already shipped completely, so a scan of a
   * large directory stats only files it has not finished.
   */
  knownDone?: (path: string) => string | undefined;
  /** Problems worth a warning (a directory that cannot be read). */
  warn?: (message: string, extra: Record<string, unknown>) => void;
}

function keyOf(st: { dev: bigint; ino: bigint }): string {
  return `${st.dev}:${st.ino}`;
}

async function statFile(path: string): Promise<{ key: string; size: number } | undefined> {
  try {
    const st = await stat(path, { bigint: true });
    if (!st.isFile()) return undefined;
    return { key: keyOf(st), size: Number(st.size) };
  } catch {
    return undefined; // gone between readdir and stat, or not readable: next scan
  }
}

async function entries(dir: string, o: ScanOptions): Promise<Dirent[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ENOTDIR")
      o.warn?.("cannot read directory", { dir, error: (err as Error).message });
    return [];
  }
}

/**
 * Every regular file the paths stand for right now, each once (by key), in a stable order:
 * compressed rotations (`.gz`, …) are left out — their records were shipped from the live file.
 */
export async function scanPaths(paths: readonly ShipPath[], o: ScanOptions): Promise<Listed[]> {
  const found = new Map<string, Listed>();
  const add = (path: string, key: string, size: number, concurrent: boolean) => {
    if (!found.has(key)) found.set(key, { path, key, size, concurrent });
  };
  const globWalk = async (dir: string, match: Array<(n: string) => boolean>, depth: number) => {
    const last = depth === match.length - 1;
    for (const e of await entries(dir, o)) {
      if (!match[depth]?.(e.name)) continue;
      const path = join(dir, e.name);
      if (last) {
        if (COMPRESSED.test(e.name) || o.exclude.has(path)) continue;
        const st = await statFile(path);
        if (st) add(path, st.key, st.size, false);
      } else if (e.isDirectory() || e.isSymbolicLink()) await globWalk(path, match, depth + 1);
    }
  };
  const dirWalk = async (dir: string) => {
    for (const e of await entries(dir, o)) {
      if (e.name.startsWith(".")) continue;
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        await dirWalk(path);
        continue;
      }
      if (COMPRESSED.test(e.name) || o.exclude.has(path)) continue;
      const done = o.knownDone?.(path);
      if (done !== undefined) {
        add(path, done, -1, true);
        continue;
      }
      const st = await statFile(path);
      if (st) add(path, st.key, st.size, true);
    }
  };
  for (const p of paths) {
    if (p.kind === "file") {
      if (o.exclude.has(p.path)) continue;
      const st = await statFile(p.path);
      if (st) add(p.path, st.key, st.size, false);
    } else if (p.kind === "glob") await globWalk(p.root, p.match, 0);
    else await dirWalk(p.path);
  }
  return [...found.values()];
}

/** An open file whose identity was checked against the key a scan saw. */
export interface OpenedFile {
  handle: FileHandle;
  size: number;
}

/**
 * Opens `path` read-only if it is still the file with `key` (it may have been rotated since):
 * the open file, `undefined` when it is gone or another file now, or the error that kept it
 * closed (EACCES: the shipper may not read it).
 */
export async function openChecked(
  path: string,
  key: string,
): Promise<OpenedFile | undefined | NodeJS.ErrnoException> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return e.code === "ENOENT" ? undefined : e;
  }
  try {
    const st = await handle.stat({ bigint: true });
    if (keyOf(st) === key && st.isFile()) return { handle, size: Number(st.size) };
  } catch {
    // fall through
  }
  await handle.close().catch(() => undefined);
  return undefined;
}

/** Reads up to `length` bytes at `position`; fewer at the end of the file. */
export async function readAt(
  handle: FileHandle,
  position: number,
  length: number,
): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await handle.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** The first bytes of a file (at most HEAD_BYTES), if it still is the file with `key`. */
export async function readHead(
  path: string,
  key: string,
): Promise<Buffer | undefined | NodeJS.ErrnoException> {
  const f = await openChecked(path, key);
  if (!f || f instanceof Error) return f;
  try {
    return Buffer.from(await readAt(f.handle, 0, HEAD_BYTES));
  } finally {
    await f.handle.close().catch(() => undefined);
  }
}

/** The checkpoint file's text, or undefined when there is none yet. */
export async function readStateFile(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * Replaces `file` with `text` atomically and durably: a temp file beside it is written and
 * fsynced, renamed over it, and the directory fsynced, so a crash leaves the old checkpoint or
 * the new one, never a torn one.
 */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const dir = dirname(file);
  const tmp = tempFileOf(file);
  const fh = await open(tmp, "w", 0o640);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  const d = await open(dir, "r");
  try {
    await d.sync();
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await d.close();
  }
}

/** The temp file {@link writeFileAtomic} uses for `file` (never shipped, never left behind). */
export function tempFileOf(file: string): string {
  return join(dirname(file), `.${basename(file)}.tmp-${process.pid}`);
}

/** Raised when another live shipper holds the checkpoint. */
export class LockedError extends Error {
  override readonly name = "LockedError";
}

/**
 * Takes `<state>.lock` (holding our pid): two shippers on one checkpoint would each overwrite
 * the other's progress. A lock left by a dead process (or by an earlier run in a container, where
 * the pid repeats) is taken over.
 */
export async function acquireLock(stateFile: string): Promise<() => Promise<void>> {
  const lock = `${stateFile}.lock`;
  await mkdir(dirname(lock), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(lock, "wx", 0o640);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return () => rm(lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const pid = Number((await readFile(lock, "utf8").catch(() => "")).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid))
      throw new LockedError(`another waf ship (pid ${pid}) uses ${stateFile}`);
    await rm(lock, { force: true });
  }
  throw new LockedError(`could not lock ${stateFile}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
