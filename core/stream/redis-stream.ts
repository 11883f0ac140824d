/**
 * The Redis Streams adapter: one stream read through one consumer group by one consumer,
 * behind the narrow {@link StreamPort} the reader loop and the local event queue use. It speaks
 * Redis's wire shapes (XREADGROUP, XAUTOCLAIM, XPENDING, XCLAIM, XACK, XINFO and the
 * dead-letter script) so that nothing above it does.
 *
 * It takes constructed clients and builds none: `redis` for short commands, `blocking` for the
 * blocking XREADGROUP (a blocking read stalls every other command on its connection).
 */

import { fieldMap } from "../lib/fields.ts";
import type { RedisClient } from "../lib/redis.ts";
import type { StreamEntry } from "./entry.ts";

/** A consumer of the group, as XINFO CONSUMERS reports it. */
export interface ConsumerInfo {
  name: string;
  pending: number;
  idleMs: number;
}

export interface AutoclaimPage {
  /** Where the next scan starts; `0-0` once the whole pending list was scanned. */
  cursor: string;
  entries: StreamEntry[];
  /** IDs that were pending but are gone from the stream (trimmed before being processed). */
  deleted: string[];
}

/** What the reader loop and the local event queue need of a consumer group. */
export interface StreamPort {
  readonly key: string;
  readonly group: string;
  readonly consumer: string;
  /** Creates the group at `0` (with the stream) unless it exists; true when it was created. */
  ensureGroup(): Promise<boolean>;
  /** New entries for this consumer (`>`), waiting up to `blockMs` when given. */
  readNew(count: number, blockMs?: number): Promise<StreamEntry[]>;
  /** This consumer's own pending entries after `afterId` (no delivery count bump). */
  readOwnPending(afterId: string, count: number): Promise<StreamEntry[]>;
  /** This consumer's pending entries: ID and delivery count, oldest first. */
  ownPending(count: number): Promise<Array<{ id: string; deliveryCount: number }>>;
  /** Delivery counts of some of this consumer's pending entries. */
  deliveryCounts(ids: readonly string[]): Promise<Map<string, number>>;
  /** XCLAIM to this consumer (bumps the delivery count); entries acknowledged meanwhile are left out. */
  claim(ids: readonly string[]): Promise<StreamEntry[]>;
  /** Like {@link claim}, IDs only (JUSTID: no delivery count bump, no payload). */
  claimIds(ids: readonly string[]): Promise<string[]>;
  /** XAUTOCLAIM entries idle for at least `minIdleMs`, one page. */
  autoclaim(minIdleMs: number, cursor: string, count: number): Promise<AutoclaimPage>;
  ack(ids: readonly string[]): Promise<number>;
  /**
   * Adds a dead-letter entry (`fields`) to `dlqKey` and acknowledges the input entry in one
   * atomic step — only if this call removed it from the pending list, so each entry is
   * dead-lettered at most once whoever gets there. True when it was added.
   */
  deadLetter(
    id: string,
    dlqKey: string,
    dlqMaxLen: number,
    fields: readonly string[],
  ): Promise<boolean>;
  consumers(): Promise<ConsumerInfo[]>;
  /** Removes another consumer if it has nothing pending (checked atomically); true when removed. */
  removeIdleConsumer(name: string): Promise<boolean>;
}

// KEYS[1] stream, KEYS[2] dlq; ARGV[1] group, ARGV[2] entry id, ARGV[3] dlq maxlen, ARGV[4..] fields.
const DEAD_LETTER_SCRIPT = `
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
  return 1
end
return 0
`;

// KEYS[1] stream; ARGV[1] group, ARGV[2] consumer. Deletes the consumer only if it has nothing
// pending (checked in the same atomic step), so no pending entry loses its owner record.
const REMOVE_CONSUMER_SCRIPT = `
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #pending > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
`;

interface StreamScripts {
  wafDeadLetter(...args: Array<string | number>): Promise<number>;
  wafRemoveConsumer(stream: string, group: string, consumer: string): Promise<number>;
}

export interface RedisStreamOptions {
  /** Short commands. */
  redis: RedisClient;
  /** Blocking reads (a dedicated connection); defaults to `redis` for callers that never block. */
  blocking?: RedisClient;
  key: string;
  group: string;
  consumer: string;
}

export class RedisStream implements StreamPort {
  readonly key: string;
  readonly group: string;
  readonly consumer: string;
  private readonly redis: RedisClient;
  private readonly blocking: RedisClient;

  constructor(o: RedisStreamOptions) {
    this.redis = o.redis;
    this.blocking = o.blocking ?? o.redis;
    this.key = o.key;
    this.group = o.group;
    this.consumer = o.consumer;
    this.redis.defineCommand("wafDeadLetter", { numberOfKeys: 2, lua: DEAD_LETTER_SCRIPT });
    this.redis.defineCommand("wafRemoveConsumer", { numberOfKeys: 1, lua: REMOVE_CONSUMER_SCRIPT });
  }

  async ensureGroup(): Promise<boolean> {
    try {
      await this.redis.xgroup("CREATE", this.key, this.group, "0", "MKSTREAM");
      return true;
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error)?.message ?? "")) throw err;
      return false;
    }
  }

  async readNew(count: number, blockMs?: number): Promise<StreamEntry[]> {
    const args: Array<string | number> = ["GROUP", this.group, this.consumer, "COUNT", count];
    // BLOCK takes whole milliseconds.
    if (blockMs !== undefined) args.push("BLOCK", Math.max(1, Math.ceil(blockMs)));
    args.push("STREAMS", this.key, ">");
    const conn = blockMs === undefined ? this.redis : this.blocking;
    return readReply(await (conn.xreadgroup as (...a: unknown[]) => Promise<unknown>)(...args));
  }

  async readOwnPending(afterId: string, count: number): Promise<StreamEntry[]> {
    const reply = await (this.redis.xreadgroup as (...a: unknown[]) => Promise<unknown>)(
      "GROUP",
      this.group,
      this.consumer,
      "COUNT",
      count,
      "STREAMS",
      this.key,
      afterId,
    );
    return readReply(reply);
  }

  async ownPending(count: number): Promise<Array<{ id: string; deliveryCount: number }>> {
    const rows = (await this.redis.xpending(
      this.key,
      this.group,
      "-",
      "+",
      count,
      this.consumer,
    )) as Array<[string, string, number, number]>;
    return rows.map(([id, , , n]) => ({ id, deliveryCount: Number(n) }));
  }

  async deliveryCounts(ids: readonly string[]): Promise<Map<string, number>> {
    const first = ids[0];
    const last = ids[ids.length - 1];
    if (!first || !last) return new Map();
    const sorted = [...ids].sort(compareIds);
    const rows = (await this.redis.xpending(
      this.key,
      this.group,
      sorted[0] as string,
      sorted[sorted.length - 1] as string,
      ids.length + 100,
      this.consumer,
    )) as Array<[string, string, number, number]>;
    return new Map(rows.map(([id, , , count]) => [id, Number(count)]));
  }

  async claim(ids: readonly string[]): Promise<StreamEntry[]> {
    if (ids.length === 0) return [];
    const reply = await this.redis.call("XCLAIM", this.key, this.group, this.consumer, 0, ...ids);
    return entriesOf(reply);
  }

  async claimIds(ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const reply = (await this.redis.call(
      "XCLAIM",
      this.key,
      this.group,
      this.consumer,
      0,
      ...ids,
      "JUSTID",
    )) as unknown[];
    return reply.map(String);
  }

  async autoclaim(minIdleMs: number, cursor: string, count: number): Promise<AutoclaimPage> {
    const reply = (await this.redis.xautoclaim(
      this.key,
      this.group,
      this.consumer,
      minIdleMs,
      cursor,
      "COUNT",
      count,
    )) as unknown;
    if (!Array.isArray(reply)) return { cursor: "0-0", entries: [], deleted: [] };
    return {
      cursor: String(reply[0] ?? "0-0"),
      entries: entriesOf(reply[1]),
      deleted: Array.isArray(reply[2]) ? reply[2].map(String) : [],
    };
  }

  async ack(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return this.redis.xack(this.key, this.group, ...ids);
  }

  async deadLetter(
    id: string,
    dlqKey: string,
    dlqMaxLen: number,
    fields: readonly string[],
  ): Promise<boolean> {
    const added = await (this.redis as unknown as StreamScripts).wafDeadLetter(
      this.key,
      dlqKey,
      this.group,
      id,
      dlqMaxLen,
      ...fields,
    );
    return added === 1;
  }

  async consumers(): Promise<ConsumerInfo[]> {
    const rows = (await this.redis.xinfo("CONSUMERS", this.key, this.group)) as unknown[];
    return rows.map(consumerInfo);
  }

  async removeIdleConsumer(name: string): Promise<boolean> {
    const res = await (this.redis as unknown as StreamScripts).wafRemoveConsumer(
      this.key,
      this.group,
      name,
    );
    return res >= 0;
  }
}

/** A consumer row of XINFO CONSUMERS (a flat list in RESP2, a map in RESP3). */
export function consumerInfo(row: unknown): ConsumerInfo {
  const c = Array.isArray(row) ? fieldMap(row) : ((row ?? {}) as Record<string, unknown>);
  return { name: String(c.name), pending: Number(c.pending ?? 0), idleMs: Number(c.idle ?? 0) };
}

/**
 * The entries of an XREADGROUP/XREAD reply: `[[key, [[id, fields|null], …]], …]` in RESP2,
 * `{ key: [...] }` in RESP3. Every stream's entries, in order.
 */
export function readReply(reply: unknown): StreamEntry[] {
  if (reply === null || reply === undefined) return [];
  const streams: unknown[] = Array.isArray(reply)
    ? reply.map((s) => (Array.isArray(s) ? s[1] : undefined))
    : Object.values(reply as Record<string, unknown>);
  return streams.flatMap((entries) => entriesOf(entries));
}

/** `[[id, fields|null], …]` (XRANGE, XCLAIM, XAUTOCLAIM) as entries. */
export function entriesOf(entries: unknown): StreamEntry[] {
  if (!Array.isArray(entries)) return [];
  return entries.flatMap((e): StreamEntry[] => {
    if (!Array.isArray(e) || e[0] === undefined || e[0] === null) return [];
    return [{ id: String(e[0]), fields: Array.isArray(e[1]) ? e[1].map(String) : null }];
  });
}

/** Orders stream entry IDs (`ms-seq`) numerically. */
export function compareIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  if (am.length !== bm.length) return am.length - bm.length;
  if (am !== bm) return am < bm ? -1 : 1;
  if (as.length !== bs.length) return as.length - bs.length;
  return as === bs ? 0 : as < bs ? -1 : 1;
}
