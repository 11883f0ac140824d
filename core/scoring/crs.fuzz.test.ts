/**
 * SCORING_PROFILE=crs on hostile records: real CRS records (blocking and DetectionOnly, CRS 3
 * and 4) with one field replaced, removed or garbled — the new facts (engine mode, interrupted,
 * 949110's match, tags, severities) included. Every record is scored with an exact integer
 * severity, a level that follows it, and `blocked` true, false or null; or rejected with a
 * reason. Never an exception.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { corazaText, corpusLines } from "../../test/fixtures/records.ts";
import { loadConfig } from "../config.ts";
import { scoreRecord, scorerSettingsFrom } from "../scorer.ts";
import { levelOf } from "./score.ts";

const seeds: unknown[] = [
  ...[
    "crs3-pl1.jsonl.gz",
    "crs3-pl1-detect.jsonl.gz",
    "crs3-pl2-detect.jsonl.gz",
    "crs4-pl1-sample.jsonl.gz",
  ].flatMap((f) =>
    corpusLines(f)
      .filter((_l, i) => i % 97 === 0)
      .map((l) => JSON.parse(l.toString("utf8")) as unknown),
  ),
  JSON.parse(corazaText({})),
];

type Path = Array<string | number>;

function paths(v: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (v === null || typeof v !== "object") return out;
  for (const [k, x] of Array.isArray(v) ? v.entries() : Object.entries(v)) {
    paths(x, [...prefix, k], out);
  }
  return out;
}

function setAt(root: unknown, path: Path, value: unknown, remove: boolean): unknown {
  if (path.length === 0) return remove ? undefined : value;
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let node = copy;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (remove) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete node[last];
  } else node[last] = value;
  return copy;
}

const hostile = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    "Enabled",
    "DetectionOnly",
    "constructor",
    "paranoia-level/9",
    ["paranoia-level/2", "paranoia-level/1"],
    "Matched \"Operator `Ge' with parameter `0' against variable `TX:ANOMALY_SCORE'",
    "Matched \"Operator `Ge' with parameter `9999999' against variable `TX:ANOMALY_SCORE'",
    "with parameter `1' against variable `TX:BLOCKING_INBOUND_ANOMALY_SCORE'",
    "Inbound Anomaly Score Exceeded (Total Score: 1000000000000000)",
    "2",
    "0",
    -5,
    1e15,
    true,
    "x".repeat(5000),
  ),
);

const settings = scorerSettingsFrom(
  loadConfig({
    SCORING_PROFILE: "crs",
    MALICIOUS_IPS: "127.0.0.0/8",
    SCORING_WEIGHTS: '{"942":-1000000}',
  }),
);

describe("crs profile on mutated real records", () => {
  it("scores each with an exact severity and a consistent level, or rejects it with a reason", () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat(), fc.boolean(), hostile, (seed, pick, remove, value) => {
        const base = seeds[seed % seeds.length];
        const all = paths(base);
        const text =
          JSON.stringify(setAt(base, all[pick % all.length] as Path, value, remove)) ?? "null";
        const r = scoreRecord(text, settings);
        if (!r.ok) {
          expect(r.reason).toMatch(/\S/);
          return;
        }
        const s = r.score;
        expect(Number.isSafeInteger(s.severity)).toBe(true);
        expect(s.level).toBe(levelOf(s.severity, settings.scoring.thresholds));
        expect([true, false, null]).toContain(s.blocked);
        expect(s.profile).toBe("crs");
        // The crs severity is bounded: at most the leakage floor or the passed ceiling, + 15.
        expect(s.severity).toBeLessThanOrEqual(115);
        expect(s.severity).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 3000 },
    );
  });
});
