import { describe, expect, it } from "vitest";
import { loadConfig } from "../core/config.ts";
import { type StreamShard, streamNames } from "../core/stream/keys.ts";
import type { StreamStatus } from "../core/stream/status.ts";
import { formatReport, report, type Snapshot, type StatusKeys } from "./status.ts";

const keys: StatusKeys = {
  names: streamNames(loadConfig({})),
  alertListKey: "waf-alerts",
  claimIdleMs: 60_000,
};

function snap(at: number, s: Partial<StreamStatus>, o: Partial<Snapshot> = {}): Snapshot {
  const stream = {
    length: 100,
    groupExists: true,
    lag: 0,
    pending: 0,
    entriesRead: 100,
    consumers: [{ name: "reader-1", pending: 0, idleMs: 20 }],
    dlqLength: 0,
    ...s,
  };
  return {
    at,
    stream: { ...stream, shards: [{ ...stream, ...(keys.names.shards[0] as StreamShard) }] },
    entriesAdded: undefined,
    lastAddedMs: at - 3000,
    alertListLength: 4,
    newestAlertAt: Math.floor(at / 1000) - 60,
    newestDlq: undefined,
    redisVersion: "7.0.15",
    ...o,
  };
}

describe("status report", () => {
  it("says OK for a keeping-up pipeline and computes rates from two samples", () => {
    const r = report(
      snap(1_000_000, { entriesRead: 100 }, { entriesAdded: 100 }),
      snap(1_002_000, { entriesRead: 140, length: 140 }, { entriesAdded: 140 }),
      keys,
      "redis://127.0.0.1:6379",
    );
    expect(r.throughput).toMatchObject({
      sampleMs: 2000,
      arrivingPerS: 20,
      readPerS: 20,
      donePerS: 20,
    });
    const text = formatReport(r);
    expect(text).toContain("Stream waf-realtime: 140 entries, newest added 3 s ago");
    expect(text).toContain("lag 0 entries not yet read, 0 entries pending");
    expect(text).toContain("consumer reader-1: 0 pending, idle 20 ms");
    expect(text).toContain("Throughput over 2 s: 20/s arriving, 20/s read, 20/s done");
    expect(text).toContain("Alert list waf-alerts: 4 alerts, newest listed 60 s ago");
    expect(text).toMatch(/OK: nothing looks wrong\.$/);
  });

  it("warns about a stalled group, a growing lag, a dead consumer and the DLQ", () => {
    const stalled = report(
      snap(0, { lag: 50, entriesRead: 100 }),
      snap(1000, { lag: 80, entriesRead: 100, dlqLength: 3 }),
      keys,
      "redis://x",
    );
    expect(stalled.warnings.join("\n")).toMatch(/80 entries waiting and none read/);
    expect(stalled.warnings.join("\n")).toMatch(
      /3 records dead-lettered: see why with waf dlq list/,
    );

    const growing = report(
      snap(0, { lag: 50, entriesRead: 100 }),
      snap(1000, { lag: 80, entriesRead: 120 }),
      keys,
      "redis://x",
    );
    expect(growing.warnings.join("\n")).toMatch(/lag grew from 50 to 80/);

    const dead = report(
      snap(0, { consumers: [{ name: "old-task", pending: 7, idleMs: 3_600_000 }] }),
      snap(0, { consumers: [{ name: "old-task", pending: 7, idleMs: 3_600_000 }] }),
      keys,
      "redis://x",
    );
    expect(dead.warnings.join("\n")).toMatch(
      /"old-task" holds 7 pending entries and has been idle 60 min/,
    );
  });

  it("explains a missing consumer group", () => {
    const r = report(
      snap(0, { groupExists: false }),
      snap(0, { groupExists: false }),
      keys,
      "redis://x",
    );
    expect(formatReport(r)).toContain("Consumer group realtime-processor: not created yet");
    expect(r.warnings[0]).toMatch(/no reader has started/);
  });
});
