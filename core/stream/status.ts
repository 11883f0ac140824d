/**
 * What an operator (and the reader's gauges, and `npm start`'s summary) needs to know about
 * the stream: length, consumer-group lag and pending entries, DLQ length.
 */
import type { Redis } from "ioredis";

export interface StreamStatus {
  /** Entries in the stream (XLEN); 0 when it does not exist. */
  length: number;
  /** Whether the consumer group exists. */
  groupExists: boolean;
  /** Entries the group has not read yet; undefined when Redis cannot tell (after trimming). */
  lag: number | undefined;
  /** Entries delivered but not acknowledged. */
  pending: number;
  /** Entries the group has read (delivered at least once). */
  entriesRead: number;
  /** Consumers of the group with their pending counts and idle times. */
  consumers: Array<{ name: string; pending: number; idleMs: number }>;
  /** Dead-letter stream length. */
  dlqLength: number;
}

function toObject(flat: unknown[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[String(flat[i])] = flat[i + 1];
  return o;
}

/** Reads the status with a handful of commands in one round trip. */
export async function streamStatus(
  redis: Redis,
  opts: { streamKey: string; group: string; dlqKey: string; withConsumers?: boolean },
): Promise<StreamStatus> {
  const p = redis.pipeline();
  p.xlen(opts.streamKey);
  p.xinfo("GROUPS", opts.streamKey);
  p.xlen(opts.dlqKey);
  if (opts.withConsumers) p.xinfo("CONSUMERS", opts.streamKey, opts.group);
  const res = (await p.exec()) ?? [];
  const [lenRes, groupsRes, dlqRes, consumersRes] = res;
  if (lenRes?.[0]) throw lenRes[0];
  if (dlqRes?.[0]) throw dlqRes[0];
  const length = Number(lenRes?.[1] ?? 0);
  const dlqLength = Number(dlqRes?.[1] ?? 0);
  // XINFO on a missing stream is an error ("no such key"): a stream nobody wrote to yet.
  const groups = groupsRes?.[0] ? [] : ((groupsRes?.[1] as unknown[][]) ?? []);
  const g = groups.map(toObject).find((x) => x.name === opts.group);
  const consumers =
    consumersRes && !consumersRes[0]
      ? ((consumersRes[1] as unknown[][]) ?? []).map(toObject).map((c) => ({
          name: String(c.name),
          pending: Number(c.pending ?? 0),
          idleMs: Number(c.idle ?? 0),
        }))
      : [];
  if (!g) {
    return {
      length,
      groupExists: false,
      lag: length,
      pending: 0,
      entriesRead: 0,
      consumers,
      dlqLength,
    };
  }
  return {
    length,
    groupExists: true,
    lag: g.lag === null || g.lag === undefined ? undefined : Number(g.lag),
    pending: Number(g.pending ?? 0),
    entriesRead: Number(g["entries-read"] ?? 0),
    consumers,
    dlqLength,
  };
}
