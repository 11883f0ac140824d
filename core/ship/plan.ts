/**
 * The shipper's decisions about files, as pure functions of what a scan saw, the checkpoint and
 * the time (passed in): where to start a file found for the first time, whether a followed file
 * was truncated or replaced, and when to flush, close or forget one. No I/O; files.ts and
 * shipper.ts act on the answers.
 *
 * Rotation, as these rules see it:
 * - rename (logrotate without `copytruncate`, `create`, or by hand): same device + inode under a
 *   new name; followed on from where it was (the writer may still append to it).
 * - `copytruncate` (how libmodsecurity logs rotate: it keeps the file open across USR1/HUP): the
 *   live file's size drops below what was read → start it again at 0; the copy is a new inode.
 *   The copy is shipped — it can hold records written after the last read and before the
 *   truncate — but from the offset already acknowledged for the file it copies, recognised by
 *   its first bytes: only records never acknowledged are sent again. Recognition can fail (the
 *   copy seen after the live file was reset, long ago); the copy is then shipped whole:
 *   duplicates, never a loss.
 * - a file that appears later: from 0. A checkpointed file whose first bytes changed (the inode
 *   was reused, or it was truncated and grew past the old offset while nobody watched): from 0.
 */
import { type FileCheckpoint, HEAD_BYTES, headMatches, sha1 } from "./checkpoint.ts";

/** A file a scan found that is not being followed yet. */
export interface Discovered {
  key: string;
  path: string;
  size: number;
  /** Its first min(HEAD_BYTES, size) bytes, read just now. */
  head: Buffer;
  /** One record per file (a Concurrent-log directory): no copies to recognise. */
  concurrent: boolean;
}

/** A file whose acknowledged prefix a new file may be a copy of. */
export interface Candidate extends Pick<FileCheckpoint, "key" | "path" | "offset"> {
  /** Its first bytes, when known (a followed file); else only the fingerprint. */
  head?: Buffer;
  headLen: number;
  headSha1: string;
}

/** A discovered file held back while it may still be a copy being written. */
export interface Deferral {
  size: number;
  /** When its size was last seen to change. */
  since: number;
}

export type StartReason = "new" | "checkpoint" | "truncated" | "replaced" | "copy";

export type StartDecision =
  | { action: "start"; offset: number; reason: StartReason; copyOf?: string }
  | { action: "defer"; why: string };

export interface StartContext {
  /** The checkpoint entry with the same key, if any. */
  checkpoint?: FileCheckpoint;
  /** Followed and checkpointed files (and recently reset generations) with offset > 0. */
  candidates: readonly Candidate[];
  /** Set when this file was deferred before. */
  deferral?: Deferral;
  now: number;
  /** How long a possible copy may stay unchanged before it is decided anyway. */
  settleMs: number;
}

/**
 * Where to start a file the shipper is not following yet, or to wait a little.
 *
 * @example
 * decideStart({ key: "1:2", path: "a.log", size: 10, head, concurrent: false },
 *   { candidates: [], now, settleMs: 2000 }) // { action: "start", offset: 0, reason: "new" }
 */
export function decideStart(d: Discovered, ctx: StartContext): StartDecision {
  let reason: StartReason = "new";
  const cp = ctx.checkpoint;
  if (cp && cp.key === d.key) {
    if (d.size < cp.offset) reason = "truncated";
    else if (headMatches(cp, d.head))
      return { action: "start", offset: cp.offset, reason: "checkpoint" };
    else reason = "replaced";
    // A checkpointed Concurrent file is immutable: a changed one is a new file.
    if (reason === "truncated") return { action: "start", offset: 0, reason };
  }
  if (d.concurrent) return { action: "start", offset: 0, reason };

  let target = 0;
  let copyOf: string | undefined;
  let unverifiable = false;
  for (const c of ctx.candidates) {
    if (c.key === d.key || c.offset <= 0) continue;
    if (d.head.length >= c.headLen) {
      const match = c.head
        ? d.head.subarray(0, c.headLen).equals(c.head.subarray(0, c.headLen))
        : sha1(d.head.subarray(0, c.headLen)) === c.headSha1;
      if (match && c.offset > target) {
        target = c.offset;
        copyOf = c.path;
      }
    } else if (c.head?.subarray(0, d.head.length).equals(d.head)) {
      // Too short to tell yet (an empty file is a prefix of everything): a copy may be starting.
      unverifiable = true;
    }
  }
  const settled =
    ctx.deferral !== undefined &&
    ctx.deferral.size === d.size &&
    ctx.now - ctx.deferral.since >= ctx.settleMs;
  if (target > 0) {
    if (target <= d.size) return { action: "start", offset: target, reason: "copy", copyOf };
    // A copy still being written, or one of an older, shorter state: all of it was shipped.
    if (settled) return { action: "start", offset: d.size, reason: "copy", copyOf };
    return { action: "defer", why: `may be a copy of ${copyOf} still being written` };
  }
  if (unverifiable && !settled)
    return { action: "defer", why: "too short to tell whether it is a copy" };
  return { action: "start", offset: 0, reason };
}

export type TailCheck = "ok" | "truncated" | "replaced";

/**
 * Whether a followed file still holds the generation being read: `truncated` when it shrank
 * below what was read, `replaced` when its first bytes changed (truncated and grown again
 * between two scans).
 *
 * @param headRead the first bytes of this generation, as read
 * @param headNow the file's first bytes now (at least as many as `headRead`, when it has them)
 */
export function checkTail(
  readPos: number,
  size: number,
  headRead: Buffer,
  headNow: Buffer | undefined,
): TailCheck {
  if (size < readPos) return "truncated";
  if (headNow && headRead.length > 0) {
    const n = Math.min(headRead.length, HEAD_BYTES);
    if (headNow.length < n || !headNow.subarray(0, n).equals(headRead.subarray(0, n)))
      return "replaced";
  }
  return "ok";
}

/** What the shipper knows of a followed file when deciding whether to let it go. */
export interface FollowState {
  concurrent: boolean;
  /** Seen by the last scan (false: renamed out of the patterns, or deleted). */
  listed: boolean;
  /** The last read hit the end of the file. */
  atEof: boolean;
  /** Bytes of an unfinished last line. */
  partial: number;
  /** Bytes read whose records Redis has not acknowledged yet. */
  unacked: number;
  /** When the file last grew (or was opened). */
  lastChangeAt: number;
  /** Bytes read so far in this generation (an empty Concurrent file is not done yet). */
  readPos: number;
  /** When a scan last listed it (or it was opened). */
  lastSeenAt: number;
}

export type IdleAction =
  /** Keep following. */
  | "keep"
  /** Concurrent file, quiet: its unterminated last bytes are its record. */
  | "flush"
  /** Concurrent file shipped completely: close it, remember it as done. */
  | "done"
  /** Quiet: close the descriptor, keep the checkpoint (reopened when it grows). */
  | "close"
  /** Gone from the patterns and drained: close it and drop its checkpoint. */
  | "forget";

/** When to flush, close or forget a followed file. */
export function idleAction(
  f: FollowState,
  now: number,
  opts: { settleMs: number; closeInactiveMs: number },
): IdleAction {
  if (!f.atEof) return "keep";
  const quietFor = now - f.lastChangeAt;
  if (f.concurrent && f.readPos > 0) {
    if (f.partial > 0) return quietFor >= opts.settleMs ? "flush" : "keep";
    if (f.unacked === 0) return f.listed ? "done" : "forget";
    return "keep";
  }
  if (f.unacked > f.partial || quietFor < opts.closeInactiveMs) return "keep";
  // A partial last line of a quiet file stays unshipped: a Serial log's record is complete
  // only with its newline. It is read again if the file grows.
  if (f.listed) return "close";
  // Not listed for a while (one failed listing must not drop a checkpoint): gone.
  return now - f.lastSeenAt >= opts.closeInactiveMs ? "forget" : "keep";
}

/** Whether a file without an open descriptor that no scan lists any more can be dropped. */
export function goneFor(lastSeenAt: number, now: number, closeInactiveMs: number): boolean {
  return now - lastSeenAt >= closeInactiveMs;
}
