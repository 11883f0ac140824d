/**
 * The dead-letter stream as operators use it (`waf dlq list|show|redrive`): scan, read one
 * entry (its record byte for byte), and redrive records back onto the input stream.
 *
 * Redrive moves a record with one Lua script per entry (read it from the DLQ, XADD it to the
 * stream with `origin_id`, XDEL it from the DLQ), so a crash or a second operator redriving at
 * the same time can neither lose a record nor send it twice. Field names come from the stream
 * contract (entry.ts), passed to the script as arguments.
 */

import type { Redis } from "ioredis";
import { fieldValue } from "../lib/fields.ts";
import { DLQ_FIELDS, type DlqEntry, dlqEntry, ORIGIN_FIELD } from "./entry.ts";
import type { StreamNames } from "./keys.ts";
import { entriesOf } from "./redis-stream.ts";

export interface DlqFilter {
  /** Case-insensitive substring of the reason. */
  reason?: string;
}

export function matchesReason(e: DlqEntry, f: DlqFilter): boolean {
  if (f.reason === undefined) return true;
  return (e.fields[DLQ_FIELDS.reason] ?? "").toLowerCase().includes(f.reason.toLowerCase());
}

const PAGE = 500;

// KEYS[1] dlq, KEYS[2] stream; ARGV[1] dlq entry id, ARGV[2] record field, ARGV[3] the origin
// field, ARGV[4] the field naming the entry it was dead-lettered from.
// Returns {1, new stream id} when moved, {0} when the entry is gone (redriven by someone else),
// {2} when it holds no record to send.
const REDRIVE_SCRIPT = `
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return {0} end
local fields = found[1][2]
local record, origin, entry
for i = 1, #fields, 2 do
  if fields[i] == ARGV[2] then record = fields[i + 1] end
  if fields[i] == ARGV[3] then origin = fields[i + 1] end
  if fields[i] == ARGV[4] then entry = fields[i + 1] end
end
if record == nil then return {2} end
-- The entry the record first arrived as, so it rewrites its own point (no second one).
origin = origin or entry
local id
if origin then
  id = redis.call('XADD', KEYS[2], '*', ARGV[2], record, ARGV[3], origin)
else
  id = redis.call('XADD', KEYS[2], '*', ARGV[2], record)
end
redis.call('XDEL', KEYS[1], ARGV[1])
return {1, id}
`;

interface RedriveScript {
  wafRedrive(dlq: string, stream: string, id: string, ...fields: string[]): void;
}

export interface RedriveOptions {
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

export class DeadLetters {
  constructor(
    private readonly redis: Redis,
    private readonly names: StreamNames,
  ) {
    redis.defineCommand("wafRedrive", { numberOfKeys: 2, lua: REDRIVE_SCRIPT });
  }

  length(): Promise<number> {
    return this.redis.xlen(this.names.dlq);
  }

  /** Every matching entry, in `order`, a page at a time. */
  async *scan(filter: DlqFilter, order: "newest" | "oldest"): AsyncGenerator<DlqEntry> {
    const key = this.names.dlq;
    let cursor: string | undefined;
    for (;;) {
      const page = entriesOf(
        order === "newest"
          ? await this.redis.xrevrange(key, cursor ? `(${cursor}` : "+", "-", "COUNT", PAGE)
          : await this.redis.xrange(key, cursor ? `(${cursor}` : "-", "+", "COUNT", PAGE),
      );
      for (const raw of page) {
        const e = dlqEntry(raw);
        if (matchesReason(e, filter)) yield e;
      }
      if (page.length < PAGE) return;
      cursor = page[page.length - 1]?.id;
    }
  }

  /** The newest matching entries, up to `limit`, and the DLQ's length. */
  async list(filter: DlqFilter, limit: number): Promise<{ entries: DlqEntry[]; total: number }> {
    const total = await this.length();
    const entries: DlqEntry[] = [];
    for await (const e of this.scan(filter, "newest")) {
      entries.push(e);
      if (entries.length >= limit) break;
    }
    return { entries, total };
  }

  /** The newest entry, if any. */
  async newest(): Promise<DlqEntry | undefined> {
    const [raw] = entriesOf(await this.redis.xrevrange(this.names.dlq, "+", "-", "COUNT", 1));
    return raw ? dlqEntry(raw) : undefined;
  }

  async get(id: string): Promise<DlqEntry | undefined> {
    const [raw] = entriesOf(await this.redis.xrange(this.names.dlq, id, id));
    return raw ? dlqEntry(raw) : undefined;
  }

  /** The record of one entry, byte for byte as stored; undefined when there is none. */
  async rawRecord(id: string): Promise<Buffer | undefined> {
    const [entry] = await this.redis.xrangeBuffer(this.names.dlq, id, id);
    return fieldValue(entry?.[1], this.names.field);
  }

  /** Moves matching entries back to the stream, oldest first (the order they arrived in). */
  async redrive(o: RedriveOptions): Promise<RedriveResult> {
    const result: RedriveResult = { redriven: 0, noRecord: 0, gone: 0, missing: [] };
    const limit = o.limit ?? Number.POSITIVE_INFINITY;
    const field = this.names.field;
    const self = this;
    const candidates = async function* () {
      if (o.ids) {
        for (const id of o.ids) {
          const e = await self.get(id);
          if (!e) result.missing.push(id);
          else if (matchesReason(e, o.filter)) yield e;
        }
      } else yield* self.scan(o.filter, "oldest");
    };
    let batch: DlqEntry[] = [];
    const flush = async () => {
      if (batch.length === 0 || o.dryRun) return;
      const p = this.redis.pipeline();
      for (const e of batch) {
        (p as unknown as RedriveScript).wafRedrive(
          this.names.dlq,
          this.names.stream,
          e.id,
          field,
          ORIGIN_FIELD,
          DLQ_FIELDS.entryId,
        );
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
      if (e.fields[field] === undefined) {
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
}
