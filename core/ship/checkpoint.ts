/**
 * The shipper's checkpoint (its "registry", as Filebeat calls it): per file, its identity
 * (device + inode), the offset up to which Redis acknowledged every record, and a fingerprint of
 * the file's first bytes. Pure: (de)serialisation and fingerprints; the atomic write is in
 * files.ts.
 *
 * Why a fingerprint besides the inode: an inode number is reused once a file is deleted, and a
 * `copytruncate`d log that grew past the old offset while the shipper was down keeps its inode.
 * In both cases resuming at the stored offset would skip records; the first bytes of the file
 * (the first record, with its unique_id and time) tell the two generations apart.
 */
import { createHash } from "node:crypto";
import { z } from "zod";

export const STATE_VERSION = 1;
/** Bytes of a file's start that identify its content generation. */
export const HEAD_BYTES = 4096;

/** One file's acknowledged progress. */
export interface FileCheckpoint {
  /** `<device>:<inode>`, both decimal. */
  key: string;
  /** Where the file was last seen (informative: identity is the key). */
  path: string;
  /** Every record before this byte offset is acknowledged by Redis. */
  offset: number;
  /** Length of the fingerprinted head: min(HEAD_BYTES, offset) when written. */
  headLen: number;
  /** SHA-1 (hex) of the file's first `headLen` bytes. */
  headSha1: string;
  /** A Concurrent-log file (one record per file) shipped completely. */
  done?: boolean;
}

/** Thrown for a checkpoint file that is not one of ours (the caller sets it aside). */
export class StateError extends Error {
  override readonly name = "StateError";
}

/** SHA-1 hex of `bytes`. */
export function sha1(bytes: Buffer): string {
  return createHash("sha1").update(bytes).digest("hex");
}

/**
 * The fingerprint of a generation whose first bytes are `head` (as read from the file) at
 * acknowledged offset `offset`: it covers only bytes already shipped.
 */
export function fingerprint(head: Buffer, offset: number): { headLen: number; headSha1: string } {
  const headLen = Math.min(HEAD_BYTES, offset, head.length);
  return { headLen, headSha1: sha1(head.subarray(0, headLen)) };
}

/** Whether `head` (a file's first bytes) starts with the fingerprinted bytes of `cp`. */
export function headMatches(cp: Pick<FileCheckpoint, "headLen" | "headSha1">, head: Buffer) {
  return head.length >= cp.headLen && sha1(head.subarray(0, cp.headLen)) === cp.headSha1;
}

const fileSchema = z
  .object({
    key: z.string().regex(/^\d+:\d+$/),
    path: z.string(),
    offset: z.number().int().min(0),
    head_len: z.number().int().min(0).max(HEAD_BYTES),
    head_sha1: z.string().regex(/^[0-9a-f]{40}$/),
    done: z.boolean().optional(),
  })
  .refine((f) => f.head_len <= f.offset, { error: "head_len must not exceed offset" });

const stateSchema = z.object({
  version: z.literal(STATE_VERSION),
  files: z.array(fileSchema),
});

/**
 * The checkpoint as JSON text, one file per line (diffable, readable with `jq`).
 *
 * @example
 * serializeState([{ key: "2049:131", path: "/var/log/modsec_audit.log", offset: 8123, ... }], now)
 */
export function serializeState(files: readonly FileCheckpoint[], now: number): string {
  const lines = files.map((f) =>
    JSON.stringify({
      key: f.key,
      path: f.path,
      offset: f.offset,
      head_len: f.headLen,
      head_sha1: f.headSha1,
      ...(f.done ? { done: true } : {}),
    }),
  );
  return `{"version":${STATE_VERSION},"written_at":${JSON.stringify(new Date(now).toISOString())},"files":[${lines.length ? `\n${lines.join(",\n")}\n` : ""}]}\n`;
}

/** Reads a checkpoint written by {@link serializeState}; throws StateError otherwise. */
export function parseState(text: string): FileCheckpoint[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StateError(`not JSON (${(err as Error).message})`);
  }
  const r = stateSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new StateError(
      `not a waf ship checkpoint (${issue?.path.join(".") || "root"}: ${issue?.message})`,
    );
  }
  return r.data.files.map((f) => ({
    key: f.key,
    path: f.path,
    offset: f.offset,
    headLen: f.head_len,
    headSha1: f.head_sha1,
    ...(f.done ? { done: true } : {}),
  }));
}
