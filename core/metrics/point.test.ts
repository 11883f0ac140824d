import { Point } from "@influxdata/influxdb-client";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { corazaText, envelope, fixtureLines } from "../../test/fixtures/records.ts";
import { normalise } from "../event/normalise.ts";
import type { WafEvent } from "../event/types.ts";
import type { PrivacyConfig } from "../privacy/privacy.ts";
import { Reputation } from "../scoring/reputation.ts";
import { DEFAULT_SCORING, scoreEvent } from "../scoring/score.ts";
import { parseStreamId } from "../stream/entry.ts";
import { lineOf } from "./line-protocol.ts";
import { pointTimeNs, toPointLine } from "./point.ts";

const off: PrivacyConfig = { ipMasking: "off", ipHashKey: undefined };
const parse = (v: unknown): WafEvent => {
  const r = normalise(typeof v === "string" ? v : JSON.stringify(v), { maxRecordBytes: 1 << 20 });
  if (!r.ok) throw new Error(r.reason);
  return r.event;
};
const line = (e: WafEvent, streamId = "1700000000123-0", privacy = off) =>
  toPointLine(e, scoreEvent(e, DEFAULT_SCORING, Reputation.fromLists({})), streamId, privacy);

describe("InfluxDB point", () => {
  it("is the reference §4 line for the worked example, timed by its stream entry", () => {
    const e = parse(envelope({ id: "tx-1", anomaly: 65, rules: ["942100"] }));
    const h = pointTimeNs(e, "1700000000123-0") - 1700000000123000000n;
    expect(h >= 0n && h < 1000n).toBe(true);
    expect(line(e)).toBe(
      `waf_events,client_ip=203.0.113.9,rule_id=942100,severity_level=critical anomaly_score=65i,severity=95i,response_code=0i ${1700000000123000000n + h}`,
    );
  });

  it("carries the response code and the event's own time for ModSecurity v3", () => {
    const e = parse(fixtureLines("modsec3-crs4_longhdwst1full_rotated-153553.jsonl")[0]);
    const l = line(e) as string;
    expect(l).toMatch(
      /^waf_events,client_ip=172\.18\.0\.1,rule_id=941100,severity_level=low anomaly_score=5i,severity=30i,response_code=403i (\d+)$/,
    );
    const ns = BigInt(l.split(" ").pop() as string);
    const second = (e.timeNs as bigint) / 1_000_000_000n;
    expect(ns / 1_000_000_000n).toBe(second);
  });

  it("escapes tag values and masks the client IP", () => {
    const e = parse(
      envelope({ ip: "2001:db8:1:2::9", classification: { rule_id: "my rule,x=1" } }),
    );
    expect(line(e, "1-0", { ipMasking: "truncate", ipHashKey: undefined })).toMatch(
      /^waf_events,client_ip=2001:db8:1::,rule_id=my\\ rule\\,x\\=1,severity_level=/,
    );
  });

  it("keeps field order even for a point built by hand", () => {
    const l = lineOf({
      measurement: "m",
      tags: [["t", "v"]],
      fields: [
        ["b", { int: 1 }],
        ["a", { int: 2 }],
      ],
      timeNs: 5n,
    });
    expect(l).toBe("m,t=v b=1i,a=2i 5");
  });
});

describe("timestamp scheme", () => {
  it("is a pure function of the event and its stream entry: a redelivery rewrites its own point", () => {
    const text = JSON.stringify(envelope({ id: "same" }));
    expect(pointTimeNs(parse(text), "1700000000000-5")).toBe(
      pointTimeNs(parse(text), "1700000000000-5"),
    );
    const coraza = corazaText({ id: "c1" });
    expect(pointTimeNs(parse(coraza), "1-0")).toBe(pointTimeNs(parse(coraza), "9-9"));
  });

  it("keeps distinct envelope entries of one millisecond apart", () => {
    const seen = new Set<bigint>();
    for (let seq = 0; seq < 1000; seq++) {
      seen.add(pointTimeNs(parse(envelope({ id: `tx-${seq % 3}` })), `1700000000000-${seq}`));
    }
    expect(seen.size).toBe(1000);
  });

  it("keeps distinct ModSecurity events of one second apart, inside that second", () => {
    const base = fixtureLines("modsec3-crs4_longhdwst1full_rotated-153553.jsonl")[0] as string;
    const seen = new Set<bigint>();
    for (let i = 0; i < 5000; i++) {
      const e = parse(base.replace("175308677431.811038", `175308677431.${i}`));
      const ns = pointTimeNs(e, undefined);
      expect(ns / 1_000_000_000n).toBe((e.timeNs as bigint) / 1_000_000_000n);
      seen.add(ns);
    }
    expect(seen.size).toBe(5000);
  });

  it("keeps Coraza times to the millisecond", () => {
    const e = parse(corazaText({ unixNs: "1709633472123456789" }));
    expect(pointTimeNs(e, undefined) / 1_000_000n).toBe(1709633472123n);
  });

  it("needs the stream entry ID for an event without its own time", () => {
    expect(() => pointTimeNs(parse(envelope()), undefined)).toThrow(/stream entry ID/);
  });

  it.each([
    ["1700000000000-0", { ms: 1700000000000n, seq: 0n }],
    ["0-1", { ms: 0n, seq: 1n }],
    ["x-1", undefined],
    ["17", undefined],
  ])("parses stream ID %s", (id, expected) => {
    expect(parseStreamId(id)).toEqual(expected);
  });
});

describe("line protocol", () => {
  it("escapes exactly like @influxdata/influxdb-client's Point, fields kept in order", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.constantFrom("a b", "a,b", "a=b", "a\nb", "a\\", "", "203.0.113.9", "942100"),
    );
    fc.assert(
      fc.property(
        text.filter((m) => m !== ""),
        fc.uniqueArray(fc.tuple(text, text), { maxLength: 4, selector: ([k]) => k }),
        fc.uniqueArray(
          fc.tuple(
            text.filter((k) => k !== ""),
            fc.integer(),
          ),
          {
            minLength: 1,
            maxLength: 4,
            selector: ([k]) => k,
          },
        ),
        fc.bigInt({ min: 0n, max: 2n ** 62n }),
        (measurement, tags, fields, timeNs) => {
          const ours = lineOf({
            measurement,
            tags: [...tags].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
            fields: [...fields]
              .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
              .map(([k, v]) => [k, { int: v }] as const),
            timeNs,
          });
          const p = new Point(measurement);
          for (const [k, v] of tags) p.tag(k, v);
          for (const [k, v] of fields) p.intField(k, v);
          p.timestamp(String(timeNs));
          expect(ours).toBe(p.toLineProtocol());
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe("sharded streams", () => {
  it("time two events with the same entry ID in different shards apart, and each the same way again", () => {
    // Entry IDs are unique within a shard's stream only; envelopes have no time of their own.
    const e = parse(envelope({ id: "tx-same", anomaly: 5 }));
    const times = Array.from({ length: 64 }, (_, index) =>
      pointTimeNs(e, "1700000000123-7", { index, shards: 64 }),
    );
    expect(new Set(times).size).toBe(64);
    expect(pointTimeNs(e, "1700000000123-7", { index: 5, shards: 64 })).toBe(times[5]);
    for (const t of times) expect(t / 1_000_000n).toBe(1700000000123n);
    // One shard keeps the timestamps every point had before sharding existed.
    expect(pointTimeNs(e, "1700000000123-7", { index: 0, shards: 1 })).toBe(
      pointTimeNs(e, "1700000000123-7"),
    );
  });
});
