/**
 * `scoreBatch` (reference §5) against scripted fakes of its own ports: a record is done only when
 * its point was accepted and, when critical, its alert payload was queued.
 */
import { describe, expect, it } from "vitest";
import { envelope } from "../../test/fixtures/records.ts";
import type { Alert } from "../alert/alert.ts";
import type { AlertPayload, AlertQueue } from "../alert/alert-queue.ts";
import type { CampaignGroup } from "../alert/campaign-store.ts";
import { loadConfig } from "../config.ts";
import type { PointLine, PointWriter, WriteOutcome } from "../metrics/writer.ts";
import { scorerSettingsFrom } from "../scorer.ts";
import type { StreamRecord } from "../stream/contract.ts";
import { type BatchDeps, type CampaignTracker, scoreBatch } from "./score-batch.ts";

const settings = scorerSettingsFrom(loadConfig({}));

type Script = (line: PointLine) => WriteOutcome;

/** A writer answering each line as `script` says; `accepted` unless told otherwise. */
function scriptedWriter(script: Script = (l) => ({ key: l.key, status: "accepted" })) {
  const calls: PointLine[][] = [];
  const writer: PointWriter = {
    async write(lines) {
      calls.push(lines);
      return lines.map(script);
    },
    async close() {},
  };
  return { writer, calls };
}

/** A queue that records every payload and refuses those `fails` picks. */
function scriptedQueue(fails: (p: AlertPayload) => boolean = () => false) {
  const enqueued: AlertPayload[] = [];
  const refused: AlertPayload[] = [];
  const queue: AlertQueue = {
    async enqueue(p) {
      if (fails(p)) {
        refused.push(p);
        throw new Error("Lambda throttled");
      }
      enqueued.push(p);
    },
  };
  const alerts = () => enqueued.flatMap((p) => (JSON.parse(p.body) as { alerts: Alert[] }).alerts);
  return { queue, enqueued, refused, alerts };
}

/** Outcomes by stream ID; anything unlisted is accepted. */
function byKey(outcomes: Record<string, "rejected" | "failed">): Script {
  return (l) => {
    const status = outcomes[l.key];
    if (status === undefined) return { key: l.key, status: "accepted" };
    return { key: l.key, status, reason: `${status} by script` };
  };
}

const critical = (id: string, tx: string): StreamRecord => ({
  id,
  data: JSON.stringify(envelope({ id: tx, anomaly: 65 })),
  deliveryCount: 1,
});
const low = (id: string, tx: string): StreamRecord => ({
  id,
  data: JSON.stringify(envelope({ id: tx, anomaly: 0 })),
  deliveryCount: 1,
});
const invalid = (id: string): StreamRecord => ({ id, data: "not json", deliveryCount: 1 });

function run(records: StreamRecord[], deps: Partial<BatchDeps> = {}) {
  return scoreBatch(
    { records },
    {
      settings,
      writer: deps.writer ?? scriptedWriter().writer,
      alerts: deps.alerts ?? scriptedQueue().queue,
      ...deps,
    },
  );
}

const ids = (items: Array<{ itemIdentifier: string }>) => items.map((i) => i.itemIdentifier);

describe("scoreBatch", () => {
  it("reports a low record whose point was accepted as done, and queues no alert", async () => {
    const w = scriptedWriter();
    const q = scriptedQueue();
    const res = await run([low("1-0", "tx-low")], { writer: w.writer, alerts: q.queue });
    expect(res.batchItemFailures).toEqual([]);
    expect(res.rejected).toEqual([]);
    expect(q.enqueued).toEqual([]);
    expect(w.calls).toHaveLength(1);
    expect(w.calls[0]?.[0]?.key).toBe("1-0");
    expect(w.calls[0]?.[0]?.line).toMatch(/^waf_events,client_ip=203\.0\.113\.9,rule_id=942100,/);
    expect(res.summary).toEqual({
      scored: 1,
      rejected: 0,
      failed: 0,
      alerts: 0,
      campaigns: 0,
      pointsRefused: 0,
    });
  });

  it("reports a critical record done once its point was accepted and its alert queued", async () => {
    const q = scriptedQueue();
    const res = await run([critical("1-0", "tx-crit")], { alerts: q.queue });
    expect(res.batchItemFailures).toEqual([]);
    expect(res.rejected).toEqual([]);
    expect(q.enqueued).toHaveLength(1);
    expect(q.enqueued[0]?.txIds).toEqual(["tx-crit"]);
    expect(q.alerts()).toEqual([
      expect.objectContaining({
        tx_id: "tx-crit",
        severity: 95,
        severity_level: "critical",
        client_ip: "203.0.113.9",
        rule_id: "942100",
      }),
    ]);
    expect(res.summary.alerts).toBe(1);
  });

  it("rejects an invalid record with its reason and never writes it", async () => {
    const w = scriptedWriter();
    const seen: Array<[string, string]> = [];
    const res = await run([invalid("1-0"), low("2-0", "tx-2")], {
      writer: w.writer,
      onRejected: (id, reason) => seen.push([id, reason]),
    });
    expect(res.rejected).toEqual([
      { itemIdentifier: "1-0", reason: expect.stringMatching(/JSON/) },
    ]);
    expect(res.batchItemFailures).toEqual([]);
    expect(w.calls.flat().map((l) => l.key)).toEqual(["2-0"]);
    expect(seen).toEqual([["1-0", expect.stringMatching(/JSON/)]]);
  });

  it("does not call the writer when every record is invalid", async () => {
    const w = scriptedWriter();
    const res = await run([invalid("1-0")], { writer: w.writer });
    expect(w.calls).toEqual([]);
    expect(ids(res.rejected)).toEqual(["1-0"]);
  });

  it("answers an empty batch with empty lists", async () => {
    const w = scriptedWriter();
    const q = scriptedQueue();
    const res = await run([], { writer: w.writer, alerts: q.queue });
    expect(res.batchItemFailures).toEqual([]);
    expect(res.rejected).toEqual([]);
    expect(w.calls).toEqual([]);
    expect(q.enqueued).toEqual([]);
  });

  it("row 1: rejects a record whose point the database refused for good, with the database's reason — and still sends its alert, counting the refusal", async () => {
    const q = scriptedQueue();
    const seen: string[] = [];
    const res = await run([critical("1-0", "tx-1")], {
      writer: scriptedWriter(byKey({ "1-0": "rejected" })).writer,
      alerts: q.queue,
      onRejected: (id) => seen.push(id),
    });
    expect(res.rejected).toEqual([
      { itemIdentifier: "1-0", reason: expect.stringContaining("rejected by script") },
    ]);
    expect(res.batchItemFailures).toEqual([]);
    expect(q.alerts().map((a) => a.tx_id)).toEqual(["tx-1"]);
    expect(seen).toEqual(["1-0"]);
    expect(res.summary).toMatchObject({ pointsRefused: 1, alerts: 1 });
  });

  it("row 1: retries (never dead-letters) a record whose point was refused while its alert could not be queued", async () => {
    const res = await run([critical("1-0", "tx-1")], {
      writer: scriptedWriter(byKey({ "1-0": "rejected" })).writer,
      alerts: scriptedQueue(() => true).queue,
    });
    expect(ids(res.batchItemFailures)).toEqual(["1-0"]);
    expect(res.rejected).toEqual([]);
  });

  it("fails a record whose point write failed; its alert is queued anyway (a retry re-queues it, the list keeps one)", async () => {
    const q = scriptedQueue();
    const failed: Array<[string, string]> = [];
    const res = await run([critical("1-0", "tx-1")], {
      writer: scriptedWriter(byKey({ "1-0": "failed" })).writer,
      alerts: q.queue,
      onFailed: (id, reason) => failed.push([id, reason]),
    });
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: "1-0" }]);
    expect(res.rejected).toEqual([]);
    expect(q.alerts().map((a) => a.tx_id)).toEqual(["tx-1"]);
    expect(failed).toEqual([["1-0", expect.stringContaining("failed by script")]]);
  });

  it("row 1: sends the alert of every critical record, whatever became of its point", async () => {
    const q = scriptedQueue();
    const res = await run(
      [critical("1-0", "tx-ok"), critical("2-0", "tx-failed"), critical("3-0", "tx-refused")],
      {
        writer: scriptedWriter(byKey({ "2-0": "failed", "3-0": "rejected" })).writer,
        alerts: q.queue,
      },
    );
    expect(q.alerts().map((a) => a.tx_id)).toEqual(["tx-ok", "tx-failed", "tx-refused"]);
    expect(ids(res.batchItemFailures)).toEqual(["2-0"]);
    expect(ids(res.rejected)).toEqual(["3-0"]);
  });

  it("fails a critical record whose alert could not be queued, though its point was accepted", async () => {
    const w = scriptedWriter();
    const q = scriptedQueue(() => true);
    const failed: Array<[string, string]> = [];
    const res = await run([critical("1-0", "tx-1"), low("2-0", "tx-2")], {
      writer: w.writer,
      alerts: q.queue,
      onFailed: (id, reason) => failed.push([id, reason]),
    });
    expect(res.batchItemFailures).toEqual([{ itemIdentifier: "1-0" }]);
    expect(res.rejected).toEqual([]);
    expect(w.calls.flat().map((l) => l.key)).toEqual(["1-0", "2-0"]);
    expect(failed).toEqual([["1-0", "alert not queued: Lambda throttled"]]);
    expect(res.summary).toMatchObject({ failed: 1, alerts: 0 });
  });

  it("fails both stream entries carrying the same tx_id when their shared alert payload fails", async () => {
    const q = scriptedQueue(() => true);
    const res = await run([critical("1-0", "tx-dup"), critical("2-0", "tx-dup")], {
      alerts: q.queue,
    });
    expect(ids(res.batchItemFailures).sort()).toEqual(["1-0", "2-0"]);
  });

  it("reports both stream entries carrying the same tx_id done when their alert was queued", async () => {
    const q = scriptedQueue();
    const res = await run([critical("1-0", "tx-dup"), critical("2-0", "tx-dup")], {
      alerts: q.queue,
    });
    expect(res.batchItemFailures).toEqual([]);
    expect(q.alerts().every((a) => a.tx_id === "tx-dup")).toBe(true);
  });

  it("fails only the records of the alert payload that could not be queued", async () => {
    // Long URIs make each alert ~2 KB, so 300 of them need several 255 KB payloads.
    const uri = `/search?q=${"x".repeat(2000)}`;
    const records = Array.from({ length: 300 }, (_, i) => ({
      id: `${i + 1}-0`,
      data: JSON.stringify(envelope({ id: `tx-${i}`, anomaly: 65, uri })),
      deliveryCount: 1,
    }));
    let calls = 0;
    const q = scriptedQueue(() => ++calls === 2);
    const res = await run(records, { alerts: q.queue });
    expect(q.enqueued.length).toBeGreaterThanOrEqual(2);
    expect(q.refused).toHaveLength(1);
    const refusedTx = new Set(q.refused[0]?.txIds);
    const expected = records
      .filter((_, i) => refusedTx.has(`tx-${i}`))
      .map((r) => r.id)
      .sort();
    expect(expected.length).toBeGreaterThan(0);
    expect(ids(res.batchItemFailures).sort()).toEqual(expected);
    expect(res.rejected).toEqual([]);
    expect(q.alerts()).toHaveLength(300 - expected.length);
  });

  it("sorts a mixed batch into done, rejected and failed", async () => {
    const q = scriptedQueue();
    const res = await run(
      [
        low("1-0", "tx-a"),
        critical("2-0", "tx-b"),
        invalid("3-0"),
        low("4-0", "tx-refused"),
        low("5-0", "tx-failed"),
        critical("6-0", "tx-c"),
      ],
      {
        writer: scriptedWriter(byKey({ "4-0": "rejected", "5-0": "failed" })).writer,
        alerts: q.queue,
      },
    );
    expect(ids(res.rejected).sort()).toEqual(["3-0", "4-0"]);
    expect(ids(res.batchItemFailures)).toEqual(["5-0"]);
    expect(q.alerts().map((a) => a.tx_id)).toEqual(["tx-b", "tx-c"]);
    expect(res.summary).toEqual({
      scored: 5,
      rejected: 2,
      failed: 1,
      alerts: 2,
      campaigns: 0,
      pointsRefused: 1,
    });
  });

  it("never reports a record done when the writer gave its line no outcome", async () => {
    // The PointWriter promises one outcome per line; a writer that breaks that promise must
    // cost a retry, never a lost event.
    const writer: PointWriter = {
      async write() {
        return [];
      },
      async close() {},
    };
    const q = scriptedQueue();
    const res = await run([critical("1-0", "tx-1")], { writer, alerts: q.queue });
    expect(q.alerts().map((a) => a.tx_id)).toEqual(["tx-1"]);
    expect(ids(res.batchItemFailures)).toEqual(["1-0"]);
  });
});

describe("redriven records", () => {
  it("time an event without its own time by the entry it first arrived as, so it rewrites its own point", async () => {
    const first = scriptedWriter();
    await run([critical("1700000000000-3", "tx-r")], { writer: first.writer });
    const again = scriptedWriter();
    await run([{ ...critical("1700000099999-0", "tx-r"), originId: "1700000000000-3" }], {
      writer: again.writer,
    });
    expect(again.calls[0]?.[0]?.line).toBe(first.calls[0]?.[0]?.line);
  });

  it("ignore an origin that is not a stream entry ID", async () => {
    const w = scriptedWriter();
    await run([{ ...critical("1700000000000-3", "tx-r"), originId: "garbage" }], {
      writer: w.writer,
    });
    const plain = scriptedWriter();
    await run([critical("1700000000000-3", "tx-r")], { writer: plain.writer });
    expect(w.calls[0]?.[0]?.line).toBe(plain.calls[0]?.[0]?.line);
  });
});

describe("campaign alerts", () => {
  const campaignSettings = scorerSettingsFrom(loadConfig({ CAMPAIGN_MIN_EVENTS: "2" }));

  /** A tracker that raises every group it sees, remembering what it was given. */
  function raisingTracker(fail = false): CampaignTracker & { seen: CampaignGroup[] } {
    const seen: CampaignGroup[] = [];
    return {
      seen,
      async apply(groups) {
        seen.push(...groups);
        if (fail) throw new Error("NOSCRIPT");
        return groups.map((g) => ({
          clientKey: g.clientKey,
          windowStart: g.windowStart,
          figures: {
            events: g.events.length,
            blocked: 0,
            maxSeverity: Math.max(...g.events.map((e) => e.severity)),
            maxAnomaly: 65,
            clientIp: g.events[0]?.clientIp,
            categories: ["942"],
            ruleCounts: new Map([["942100", g.events.length]]),
          },
        }));
      },
    };
  }

  it("counts every valid event in its client's window (the window of its stream entry) and queues the raised campaign alert with the event alerts", async () => {
    const q = scriptedQueue();
    const tracker = raisingTracker();
    const res = await run(
      [
        critical("1700000000000-0", "tx-1"),
        low("1700000001000-0", "tx-2"),
        invalid("1700000002000-0"),
      ],
      { settings: campaignSettings, alerts: q.queue, campaigns: tracker },
    );
    expect(tracker.seen).toHaveLength(1);
    expect(tracker.seen[0]).toMatchObject({ clientKey: "203.0.113.9", windowStart: 1699999800 });
    expect(tracker.seen[0]?.events.map((e) => e.txId)).toEqual(["tx-1", "tx-2"]);
    const kinds = q.alerts().map((a) => [a.kind, a.tx_id]);
    expect(kinds).toEqual([
      ["event", "tx-1"],
      ["campaign", "campaign:203.0.113.9:1699999800"],
    ]);
    expect(res.summary).toMatchObject({ alerts: 2, campaigns: 1 });
    expect(res.batchItemFailures).toEqual([]);
  });

  it("fails the window's records when the windows could not be counted, so their redelivery counts them", async () => {
    const res = await run([low("1700000000000-0", "tx-1"), low("1700000001000-0", "tx-2")], {
      settings: campaignSettings,
      campaigns: raisingTracker(true),
    });
    expect(ids(res.batchItemFailures)).toEqual(["1700000000000-0", "1700000001000-0"]);
  });

  it("fails the window's records when its campaign alert could not be queued", async () => {
    const q = scriptedQueue((p) => p.txIds.some((t) => t.startsWith("campaign:")));
    const res = await run([low("1700000000000-0", "tx-1"), low("1700000001000-0", "tx-2")], {
      settings: campaignSettings,
      alerts: q.queue,
      campaigns: raisingTracker(),
    });
    expect(ids(res.batchItemFailures)).toEqual(["1700000000000-0", "1700000001000-0"]);
  });

  it("asks nothing of the tracker when campaigns are off (CAMPAIGN_MIN_EVENTS=0)", async () => {
    const tracker = raisingTracker();
    await run([low("1700000000000-0", "tx-1")], {
      settings: scorerSettingsFrom(loadConfig({ CAMPAIGN_MIN_EVENTS: "0" })),
      campaigns: tracker,
    });
    expect(tracker.seen).toEqual([]);
  });
});
