/**
 * Fuzzing the scorer's input path with mutated real records (issue: nothing lost, nothing
 * doubled, item 8): whatever the mutation, a record is either scored (and yields a valid point
 * line) or rejected with a reason — never an exception, never silence.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { corazaText, envelope, fixtureFiles, fixtureLines } from "../test/fixtures/records.ts";
import type { Alert } from "./alert/alert.ts";
import type { AlertPayload } from "./alert/alert-queue.ts";
import { loadConfig } from "./config.ts";
import type { PointLine, WriteOutcome } from "./metrics/writer.ts";
import { outputsOf, scoreRecord, scorerSettingsFrom } from "./scorer.ts";
import { scoreBatch } from "./use-cases/score-batch.ts";

const seeds: string[] = [
  ...fixtureFiles().flatMap((f) => fixtureLines(f)),
  JSON.stringify(envelope({ anomaly: 65, classification: { track: "sqli", rule_id: "942100" } })),
  corazaText({}),
];
const parsedSeeds = seeds.flatMap((s) => {
  try {
    return [JSON.parse(s) as unknown];
  } catch {
    return [];
  }
});

type Path = Array<string | number>;

function paths(v: unknown, prefix: Path = [], out: Path[] = [], depth = 0): Path[] {
  out.push(prefix);
  if (depth > 8 || v === null || typeof v !== "object") return out;
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x] as const) : Object.entries(v);
  for (const [k, x] of entries) paths(x, [...prefix, k], out, depth + 1);
  return out;
}

function setAt(root: unknown, path: Path, value: unknown, remove: boolean): unknown {
  if (path.length === 0) return remove ? undefined : value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let node = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (remove) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete node[last];
  } else node[last] = value;
  return copy;
}

const weird = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    "",
    " ",
    "::ffff:1.2.3.4",
    "999.1.1.1",
    "Total Score: 99999999999999999999999",
    "Inbound Anomaly Score Exceeded (Total Score: 80)",
    "949110",
    "942100",
    -1,
    1e308,
    Number.MAX_SAFE_INTEGER,
    "__proto__",
    { __proto__: { polluted: true } },
    "x".repeat(3000),
  ),
);

const mutation = fc.record({
  seed: fc.nat(),
  pick: fc.nat(),
  op: fc.constantFrom("replace", "remove", "truncate", "flip", "proto", "wrap"),
  value: weird,
  cut: fc.nat(),
});

interface Mutation {
  seed: number;
  pick: number;
  op: string;
  value: unknown;
  cut: number;
}

const mutate = (m: Mutation): string => {
  const base = parsedSeeds[m.seed % parsedSeeds.length];
  const text = JSON.stringify(base);
  switch (m.op) {
    case "truncate":
      return text.slice(0, m.cut % (text.length + 1));
    case "flip": {
      const i = m.cut % text.length;
      return (
        text.slice(0, i) +
        String.fromCharCode((text.charCodeAt(i) + 1 + (m.pick % 90)) % 0xffff) +
        text.slice(i + 1)
      );
    }
    case "proto":
      return text.replace(
        '"transaction":',
        '"__proto__":{"transaction":{"id":"p","client_ip":"1.1.1.1"}},"transaction":',
      );
    case "wrap":
      return JSON.stringify([base]);
    default: {
      const all = paths(base);
      const path = all[m.pick % all.length] as Path;
      return JSON.stringify(setAt(base, path, m.value, m.op === "remove")) ?? "null";
    }
  }
};

const settings = scorerSettingsFrom(loadConfig({ MALICIOUS_IPS: "10.0.0.0/8,2001:db8::/32" }));

describe("fuzzed real records", () => {
  it("are each scored with a well-formed point, or rejected with a reason", () => {
    fc.assert(
      fc.property(mutation, (m) => {
        const text = mutate(m);
        const r = scoreRecord(text, settings);
        if (!r.ok) {
          expect(r.reason).toMatch(/\S/);
          expect(r.reason.length).toBeLessThanOrEqual(300);
          return;
        }
        const { line, alert } = outputsOf(r, "1700000000000-0", settings.privacy);
        expect(line).toMatch(
          // Tag values may carry escaped spaces, commas and equals signs.
          /^waf_events,client_ip=[^\s,=\\]+,rule_id=(?:[^\s,=\\]|\\.)+,severity_level=(critical|high|medium|low) anomaly_score=\d+i,severity=-?\d+i,response_code=\d+i \d+$/,
        );
        expect(Number.isSafeInteger(r.score.severity)).toBe(true);
        expect(alert === undefined).toBe(!r.score.alert);
      }),
      { numRuns: 3000 },
    );
  });

  it("leave every record of a batch either done or rejected, never both, never neither", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 30 }), async (ms) => {
        const records = ms.map((m, i) => ({
          id: `1700000000000-${i}`,
          data: mutate(m),
          deliveryCount: 1,
        }));
        const written: PointLine[] = [];
        const queued: Alert[] = [];
        const res = await scoreBatch(
          { records },
          {
            settings,
            writer: {
              write: async (lines: PointLine[]): Promise<WriteOutcome[]> => {
                written.push(...lines);
                return lines.map((l) => ({ key: l.key, status: "accepted" as const }));
              },
              close: async () => undefined,
            },
            alerts: {
              enqueue: async (p: AlertPayload) => {
                queued.push(...(JSON.parse(p.body) as { alerts: Alert[] }).alerts);
              },
            },
          },
        );
        expect(res.batchItemFailures).toEqual([]);
        const rejected = new Set(res.rejected.map((r) => r.itemIdentifier));
        const done = new Set(written.map((l) => l.key));
        for (const r of records) expect(rejected.has(r.id) !== done.has(r.id)).toBe(true);
        expect(rejected.size + done.size).toBe(records.length);
      }),
      { numRuns: 300 },
    );
  });
});
