/**
 * `waf dlq list|show|redrive`: the dead-letter stream (SPEC §5, `DLQ_STREAM_KEY`). Each entry
 * holds `reason`, `attempts`, `entry_id`, `stream`, `group`, `consumer`, `failed_at` and the
 * original record under the `STREAM_FIELD` name (written by core/stream/reader.ts).
 *
 * Redrive moves a record back to the input stream with one Lua script per entry (read the
 * record from the DLQ, XADD it to the stream, XDEL it from the DLQ), so a crash or a second
 * operator redriving at the same time can neither lose a record nor send it twice.
 */
import type { Redis } from "ioredis";
import { clean, table, truncate } from "./format.ts";

export interface DlqEntry {
  /** The DLQ entry's own ID. */
  id: string;
  fields: Record<string, string>;
}

export interface DlqFilter {
  /** Case-insensitive substring of the reason. */
  reason?: string;
}

const PAGE = 500;

function toEntry([id, flat]: [string, string[]]): DlqEntry {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i] as string] = flat[i + 1] as string;
  return { id, fields };
}

export function matchesReason(e: DlqEntry, f: DlqFilter): boolean {
  if (f.reason === undefined) return true;
  return (e.fields.reason ?? "").toLowerCase().includes(f.reason.toLowerCase());
}

/** Every matching entry, in `order`, a page at a time, until `limit`. */
export async function* scanDlq(
  redis: Redis,
  dlqKey: string,
  filter: DlqFilter,
  order: "newest" | "oldest",
): AsyncGenerator<DlqEntry> {
  let cursor: string | undefined;
  for (;;) {
    const page = (
      order === "newest"
        ? await redis.xrevrange(dlqKey, cursor ? `(${cursor}` : "+", "-", "COUNT", PAGE)
        : await redis.xrange(dlqKey, cursor ? `(${cursor}` : "-", "+", "COUNT", PAGE)
    ) as Array<[string, string[]]>;
    for (const raw of page) {
      const e = toEntry(raw);
      if (matchesReason(e, filter)) yield e;
    }
    if (page.length < PAGE) return;
    cursor = page[page.length - 1]?.[0];
  }
}

export async function listDlq(
  redis: Redis,
  dlqKey: string,
  filter: DlqFilter,
  limit: number,
): Promise<{ entries: DlqEntry[]; total: number }> {
  const total = await redis.xlen(dlqKey);
  const entries: DlqEntry[] = [];
  for await (const e of scanDlq(redis, dlqKey, filter, "newest")) {
    entries.push(e);
    if (entries.length >= limit) break;
  }
  return { entries, total };
}

export async function getDlqEntry(
  redis: Redis,
  dlqKey: string,
  id: string,
): Promise<DlqEntry | undefined> {
  const page = (await redis.xrange(dlqKey, id, id)) as Array<[string, string[]]>;
  return page[0] ? toEntry(page[0]) : undefined;
}

/** The DLQ entries as a table: the record is shown as a one-line preview. */
export function dlqTable(entries: DlqEntry[], field: string): string {
  return table(
    ["DLQ ID", "FAILED AT", "TRIES", "STREAM ENTRY", "REASON", "RECORD"],
    entries.map(({ id, fields: f }) => [
      id,
      clean(f.failed_at ?? "-")
        .replace("T", " ")
        .replace(/\.\d+Z$/, "Z"),
      clean(f.attempts ?? "-"),
      clean(f.entry_id ?? "-"),
      truncate(clean(f.reason ?? "-"), 60),
      f[field] === undefined ? "(none)" : truncate(clean(f[field] ?? ""), 50),
    ]),
  );
}

/** Every field of one entry, the record last and whole. */
export function dlqDetails(e: DlqEntry, field: string): string {
  const order = ["reason", "attempts", "failed_at", "entry_id", "stream", "group", "consumer"];
  const names = [
    ...order.filter((k) => k in e.fields),
    ...Object.keys(e.fields).filter((k) => !order.includes(k) && k !== field),
  ];
  const pad = Math.max(8, ...names.map((n) => n.length));
  const lines = [`${"id".padEnd(pad)}  ${e.id}`];
  for (const n of names) lines.push(`${clean(n).padEnd(pad)}  ${clean(e.fields[n] ?? "")}`);
  const record = e.fields[field];
  lines.push(
    record === undefined
      ? `${field.padEnd(pad)}  (no record: the stream entry had no "${field}" field)`
      : `${field.padEnd(pad)}  (${Buffer.byteLength(record)} bytes, verbatim)\n${clean(record)}`,
  );
  return lines.join("\n");
}

// KEYS[1] dlq, KEYS[2] stream; ARGV[1] dlq entry id, ARGV[2] record field.
// Returns {1, new stream id} when moved, {0} when the entry is gone (redriven by someone else),
// {2} when it holds no record to send.
const REDRIVE_SCRIPT = `
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return {0} end
local fields = found[1][2]
local record, origin
for i = 1, #fields, 2 do
  if fields[i] == ARGV[2] then record = fields[i + 1] end
  if fields[i] == 'origin_id' then origin = fields[i + 1] end
  if fields[i] == 'entry_id' and origin == nil then origin = fields[i + 1] end
end
if record == nil then return {2} end
-- origin_id: the entry the record first arrived as, so it rewrites its own point (no second one)
local id
if origin then
  id = redis.call('XADD', KEYS[2], '*', ARGV[2], record, 'origin_id', origin)
else
  id = redis.call('XADD', KEYS[2], '*', ARGV[2], record)
end
redis.call('XDEL', KEYS[1], ARGV[1])
return {1, id}
`;

interface RedriveClient {
  wafRedrive(dlq: string, stream: string, id: string, field: string): void;
}

export interface RedriveOptions {
  dlqKey: string;
  streamKey: string;
  field: string;
  filter: DlqFilter;
  /** Only these DLQ entry IDs (still subject to `filter`). */
  ids?: string[];
  limit?: number;
  dryRun?: boolean;
  /** Called for each entry about to be moved (or, in a dry run, that would be). */
  onEntry?: (e: DlqEntry) => void;
}

export interface RedriveResult {
  /** Moved back to the stream (or, in a dry run, would be). */
  redriven: number;
  /** Held no record (the stream entry had no record field). */
  noRecord: number;
  /** Gone before we got to them (redriven concurrently). */
  gone: number;
  /** Asked for by ID but not in the DLQ. */
  missing: string[];
}

/** Moves matching DLQ entries back to the stream, oldest first (the order they arrived in). */
export async function redrive(redis: Redis, o: RedriveOptions): Promise<RedriveResult> {
  redis.defineCommand("wafRedrive", { numberOfKeys: 2, lua: REDRIVE_SCRIPT });
  const result: RedriveResult = { redriven: 0, noRecord: 0, gone: 0, missing: [] };
  const limit = o.limit ?? Number.POSITIVE_INFINITY;
  const candidates = async function* () {
    if (o.ids) {
      for (const id of o.ids) {
        const e = await getDlqEntry(redis, o.dlqKey, id);
        if (!e) result.missing.push(id);
        else if (matchesReason(e, o.filter)) yield e;
      }
    } else yield* scanDlq(redis, o.dlqKey, o.filter, "oldest");
  };
  let batch: DlqEntry[] = [];
  const flush = async () => {
    if (batch.length === 0 || o.dryRun) return;
    const p = redis.pipeline();
    for (const e of batch) {
      (p as unknown as RedriveClient).wafRedrive(o.dlqKey, o.streamKey, e.id, o.field);
    }
    batch = [];
    for (const [err, res] of (await p.exec()) ?? []) {
      if (err) throw err;
      const [status] = res as [number, string?];
      if (status === 1) result.redriven++;
      else if (status === 2) result.noRecord++;
      else result.gone++;
    }
  };
  let taken = 0;
  for await (const e of candidates()) {
    if (taken >= limit) break;
    if (e.fields[o.field] === undefined) {
      result.noRecord++;
      continue;
    }
    taken++;
    o.onEntry?.(e);
    if (o.dryRun) result.redriven++;
    else batch.push(e);
    if (batch.length >= 100) await flush();
  }
  await flush();
  return result;
}
