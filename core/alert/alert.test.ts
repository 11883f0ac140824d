/**
 * The alert object's bounds (issue 12 row 3 and the class behind it): whatever the request
 * held, one alert's JSON stays small, well-formed, and packs into a Lambda `Event` payload.
 */
import { describe, expect, it } from "vitest";
import { campaignAlert } from "../../test/alerts.ts";
import { envelope } from "../../test/fixtures/records.ts";
import { normalise } from "../event/normalise.ts";
import { Reputation } from "../scoring/reputation.ts";
import { DEFAULT_SCORING, scoreEvent } from "../scoring/score.ts";
import { ALERT_LIMITS, type Alert, boundAlert, MAX_ALERT_BYTES, toAlert } from "./alert.ts";
import { MAX_ASYNC_PAYLOAD_BYTES, packAlerts } from "./alert-queue.ts";
import { isWellFormed } from "./text.ts";

const privacy = { ipMasking: "off" as const, ipHashKey: undefined };

function scored(record: Record<string, unknown>) {
  const n = normalise(JSON.stringify(record), { maxRecordBytes: 5 << 20 });
  if (!n.ok) throw new Error(n.reason);
  return toAlert(
    n.event,
    scoreEvent(n.event, DEFAULT_SCORING, Reputation.fromLists({})),
    "1-0",
    privacy,
  );
}

const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

/** Every string field at its worst: long, escaped six bytes a character, lone surrogates. */
const worst = (n: number) => '\u0001\uD800"'.repeat(n);

describe("alert bounds", () => {
  it("row 3: a 300 KB method leaves a small alert that packs into one Event payload", () => {
    const alert = scored(
      envelope({ id: "tx-big", anomaly: 65, method: "G".repeat(300 * 1024), uri: "/x" }),
    );
    expect(alert.severity_level).toBe("critical");
    expect(alert.method.length).toBeLessThanOrEqual(ALERT_LIMITS.method);
    expect(bytes(alert)).toBeLessThan(MAX_ALERT_BYTES);
    const payloads = packAlerts([alert]);
    expect(payloads).toHaveLength(1);
    expect(Buffer.byteLength(payloads[0]?.body ?? "")).toBeLessThan(MAX_ASYNC_PAYLOAD_BYTES);
  });

  it("keeps every field of a hostile event alert within its bound and the whole under 8 KB", () => {
    const a = boundAlert({
      kind: "event",
      timestamp: 1,
      severity: 95,
      severity_level: "critical",
      client_ip: worst(5000),
      rule_id: worst(5000),
      categories: Array.from({ length: 500 }, () => worst(100)),
      uri: worst(100_000),
      method: worst(5000),
      tx_id: worst(5000),
      anomaly_score: 65,
    } satisfies Alert);
    expect(bytes(a)).toBeLessThanOrEqual(MAX_ALERT_BYTES);
    for (const s of [a.client_ip, a.rule_id, a.uri, a.method, a.tx_id, ...a.categories]) {
      expect(isWellFormed(s)).toBe(true);
    }
    expect(boundAlert(a)).toEqual(a);
  });

  it("keeps a hostile campaign alert's figures, bounded", () => {
    const b = boundAlert(
      campaignAlert(1_700_000_100, {
        top_rules: Array.from({ length: 100 }, () => ({ rule_id: worst(1000), events: 3 })),
      }),
    );
    expect(b).toMatchObject({
      kind: "campaign",
      window_start: 1_700_000_100,
      events: 20,
      blocked: 18,
    });
    expect(b.top_rules).toHaveLength(ALERT_LIMITS.topRules);
    expect(bytes(b)).toBeLessThanOrEqual(MAX_ALERT_BYTES);
  });

  it("keeps two long tx_ids sharing a prefix apart", () => {
    // 1,001 characters (the scorer takes up to 1,024), 2,000 bytes of UTF-8: cut to 1 KB.
    const prefix = "é".repeat(1000);
    const a = scored(envelope({ id: `${prefix}1`, anomaly: 65 }));
    const b = scored(envelope({ id: `${prefix}2`, anomaly: 65 }));
    expect(a.tx_id).not.toBe(b.tx_id);
  });
});
