/**
 * The dead-letter stream as operators use it (`waf dlq list|show|redrive`): scan, read one
 * entry (its record byte for byte), and redrive records back onto the input stream.
 *
 * Redrive moves a record with one Lua script per entry (read it from the DLQ, XADD it to the
 * stream with `origin_id`, XDEL it from the DLQ), so a crash or a second operator redriving at
 * the same time can neither lose a record nor send it twice. Field names come from the stream
 * contract (entry.ts), passed to the script as arguments.
 */

import { fieldValue } from "../lib/fields.ts";
import type { RedisClient } from "../lib/redis.ts";
import { DLQ_FIELDS, type DlqEntry, dlqEntry, ORIGIN_FIELD } from "./entry.ts";
import type { StreamNames, StreamShard } from "./keys.ts";
import { compareIds, entriesOf } from "./redis-stream.ts";

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

/**
 * The dead-letter streams of every shard, as one: listing merges them newest first, an entry is
 * found in whichever shard holds it, and a redriven record goes back to its own shard.
 */
export class DeadLetters {
  constructor(
    private readonly redis: RedisClient,
    private readonly names: StreamNames,
  ) {
    redis.defineCommand("wafRedrive", { numberOfKeys: 2, lua: REDRIVE_SCRIPT });
  }

  async length(): Promise<number> {
    const lengths = await Promise.all(this.names.shards.map((s) => this.redis.xlen(s.dlq)));
    return lengths.reduce((n, l) => n + l, 0);
  }

  /** One shard's matching entries, in `order`, a page at a time. */
  private async *scanShard(
    shard: StreamShard,
    filter: DlqFilter,
    order: "newest" | "oldest",
  ): AsyncGenerator<DlqEntry & { shard: StreamShard }> {
    let cursor: string | undefined;
    for (;;) {
      const page = entriesOf(
        order === "newest"
          ? await this.redis.xrevrange(shard.dlq, cursor ? `(${cursor}` : "+", "-", "COUNT", PAGE)
          : await this.redis.xrange(shard.dlq, cursor ? `(${cursor}` : "-", "+", "COUNT", PAGE),
      );
      for (const raw of page) {
        const e = dlqEntry(raw);
        if (matchesReason(e, filter)) yield { ...e, shard };
      }
      if (page.length < PAGE) return;
      cursor = page[page.length - 1]?.id;
    }
  }

  /** Every matching entry of every shard, shard by shard, each in `order`. */
  async *scan(
    filter: DlqFilter,
    order: "newest" | "oldest",
  ): AsyncGenerator<DlqEntry & { shard: StreamShard }> {
    for (const shard of this.names.shards) yield* this.scanShard(shard, filter, order);
  }

  /** The newest matching entries over every shard, up to `limit`, and the DLQs' total length. */
  async list(filter: DlqFilter, limit: number): Promise<{ entries: DlqEntry[]; total: number }> {
    const total = await this.length();
    const perShard = await Promise.all(
      this.names.shards.map(async (shard) => {
        const out: DlqEntry[] = [];
        for await (const e of this.scanShard(shard, filter, "newest")) {
          out.push(e);
          if (out.length >= limit) break;
        }
        return out;
      }),
    );
    const entries = perShard
      .flat()
      .sort((a, b) => compareIds(b.id, a.id))
      .slice(0, limit);
    return { entries, total };
  }

  /** The shard whose DLQ holds entry `id`, and the entry. */
  private async find(id: string): Promise<{ shard: StreamShard; entry: DlqEntry } | undefined> {
    for (const shard of this.names.shards) {
      const [raw] = entriesOf(await this.redis.xrange(shard.dlq, id, id));
      if (raw) return { shard, entry: dlqEntry(raw) };
    }
    return undefined;
  }

  async get(id: string): Promise<DlqEntry | undefined> {
    return (await this.find(id))?.entry;
  }

  /** The record of one entry, byte for byte as stored; undefined when there is none. */
  async rawRecord(id: string): Promise<Buffer | undefined> {
    const found = await this.find(id);
    if (!found) return undefined;
    const [entry] = await this.redis.xrangeBuffer(found.shard.dlq, id, id);
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
          const found = await self.find(id);
          if (!found) result.missing.push(id);
          else if (matchesReason(found.entry, o.filter))
            yield { ...found.entry, shard: found.shard };
        }
      } else yield* self.scan(o.filter, "oldest");
    };
    // One pipeline per shard: a cluster pipeline must not span slots.
    let batch: Array<DlqEntry & { shard: StreamShard }> = [];
    const flush = async () => {
      if (batch.length === 0 || o.dryRun) return;
      const p = this.redis.pipeline();
      for (const e of batch) {
        (p as unknown as RedriveScript).wafRedrive(
          e.shard.dlq,
          e.shard.stream,
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
      if (o.dryRun) {
        result.redriven++;
        continue;
      }
      if (batch.length > 0 && batch[0]?.shard !== e.shard) await flush();
      batch.push(e);
      if (batch.length >= 100) await flush();
    }
    await flush();
    return result;
  }
}
