/**
 * `packAlerts`: every payload within the asynchronous-invocation limit, every alert kept, in
 * order, each payload's `txIds` matching what it carries.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Alert } from "./alert.ts";
import { MAX_ASYNC_PAYLOAD_BYTES, packAlerts } from "./alert-queue.ts";

function alert(i: number, extra: Partial<Alert> = {}): Alert {
  return {
    timestamp: 1_700_000_000 + i,
    severity: 95,
    severity_level: "critical",
    client_ip: "203.0.113.9",
    rule_id: "942100",
    categories: ["sqli"],
    uri: "/login?user=admin'--",
    method: "POST",
    tx_id: `tx-${i}`,
    anomaly_score: 65,
    ...extra,
  };
}

const bytes = (s: string) => Buffer.byteLength(s, "utf8");
const alertsOf = (body: string) => (JSON.parse(body) as { alerts: Alert[] }).alerts;
/** The smallest body an alert can travel in. */
const aloneSize = (a: Alert) => bytes(`{"alerts":[${JSON.stringify(a)}]}`);

// Hostile text: multi-byte characters, lone surrogates, quotes and control characters.
const text = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.constantFrom("", '"', "\\", "é", "😀", "\u0000", "\ud800"),
);
const alertArb: fc.Arbitrary<Alert> = fc.record({
  timestamp: fc.integer({ min: 0, max: 4_000_000_000 }),
  severity: fc.integer({ min: 0, max: 1000 }),
  severity_level: fc.constantFrom("critical", "high", "medium", "low"),
  client_ip: text,
  rule_id: text,
  categories: fc.array(text, { maxLength: 4 }),
  uri: fc.oneof(text, fc.string({ unit: "grapheme", minLength: 200, maxLength: 800 })),
  method: text,
  tx_id: text,
  anomaly_score: fc.integer({ min: 0, max: 1000 }),
});

describe("packAlerts", () => {
  it("puts a small batch in one payload of the documented shape", () => {
    const alerts = [alert(1), alert(2), alert(3)];
    const payloads = packAlerts(alerts);
    expect(payloads).toHaveLength(1);
    expect(JSON.parse(payloads[0]?.body ?? "")).toEqual({ alerts });
    expect(payloads[0]?.txIds).toEqual(["tx-1", "tx-2", "tx-3"]);
  });

  it("returns no payload for no alerts", () => {
    expect(packAlerts([])).toEqual([]);
  });

  it("keeps every payload below Lambda's asynchronous limit for a large batch", () => {
    const uri = `/search?q=${"é".repeat(1000)}`;
    const alerts = Array.from({ length: 500 }, (_, i) => alert(i, { uri }));
    const payloads = packAlerts(alerts);
    expect(payloads.length).toBeGreaterThan(1);
    for (const p of payloads) expect(bytes(p.body)).toBeLessThanOrEqual(MAX_ASYNC_PAYLOAD_BYTES);
    expect(payloads.flatMap((p) => alertsOf(p.body))).toEqual(alerts);
    expect(MAX_ASYNC_PAYLOAD_BYTES).toBeLessThan(256 * 1024);
  });

  it("fills a payload exactly up to the limit, not a byte beyond", () => {
    const alerts = [alert(1), alert(2)];
    const both = bytes(`{"alerts":[${alerts.map((a) => JSON.stringify(a)).join(",")}]}`);
    expect(packAlerts(alerts, both)).toHaveLength(1);
    expect(packAlerts(alerts, both - 1)).toHaveLength(2);
  });

  it("gives an alert larger than the limit a payload of its own", () => {
    const alerts = [alert(1), alert(2, { uri: "x".repeat(500) }), alert(3)];
    const payloads = packAlerts(alerts, aloneSize(alert(1)) + 10);
    expect(payloads.map((p) => p.txIds)).toEqual([["tx-1"], ["tx-2"], ["tx-3"]]);
  });

  it("keeps every alert, in order, within the limit, for any alerts and any limit (property)", () => {
    fc.assert(
      fc.property(
        fc.array(alertArb, { maxLength: 40 }),
        fc.integer({ min: 1, max: 4000 }),
        (alerts, maxBytes) => {
          const payloads = packAlerts(alerts, maxBytes);
          // Nothing lost, nothing added, nothing reordered.
          expect(payloads.flatMap((p) => alertsOf(p.body))).toEqual(
            alerts.map((a) => JSON.parse(JSON.stringify(a))),
          );
          expect(payloads.flatMap((p) => p.txIds)).toEqual(alerts.map((a) => a.tx_id));
          for (const p of payloads) {
            expect(p.txIds).toEqual(alertsOf(p.body).map((a) => a.tx_id));
            expect(p.txIds.length).toBeGreaterThan(0);
            const size = bytes(p.body);
            if (size > maxBytes) {
              // Only an alert too large on its own may exceed the limit, and then alone.
              expect(p.txIds).toHaveLength(1);
              expect(size).toBe(aloneSize(alertsOf(p.body)[0] as Alert));
            }
          }
          // No payload could have taken the next one's first alert (greedy packing).
          for (let i = 0; i + 1 < payloads.length; i++) {
            const cur = alertsOf(payloads[i]?.body ?? "");
            const next = alertsOf(payloads[i + 1]?.body ?? "")[0] as Alert;
            const merged = `{"alerts":[${[...cur, next].map((a) => JSON.stringify(a)).join(",")}]}`;
            expect(bytes(merged)).toBeGreaterThan(maxBytes);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("uses one payload whenever all alerts fit under the default limit (property)", () => {
    fc.assert(
      fc.property(fc.array(alertArb, { minLength: 1, maxLength: 50 }), (alerts) => {
        expect(packAlerts(alerts)).toHaveLength(1);
      }),
    );
  });
});
