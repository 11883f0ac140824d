/**
 * In-process throughput on one core: raw `JSON.parse` of the records (the ceiling of any
 * scorer that reads JSON), and the scorer's own work per record as `scoreBatch` does it —
 * normalise (parse, detect, validate), score, point line, alert object.
 */
import { outputsOf, type ScorerSettings, scoreRecord } from "../core/scorer.ts";
import { Reputation } from "../core/scoring/reputation.ts";
import { DEFAULT_SCORING } from "../core/scoring/score.ts";
import type { RecordMix } from "./records.ts";

export interface CoreResult {
  json_parse_records_per_s: number;
  /** normalise + score + point line + alert: the scorer's per-record CPU work. */
  core_records_per_s: number;
  core_vs_json_parse: number;
  /** normalise + score only (no point line, no alert). */
  normalise_score_records_per_s: number;
  core_sample_records: number;
  core_sample_mean_bytes: number;
}

/** A short malicious list and an allowlist, as a production stage would run with. */
const MALICIOUS = ["198.51.100.140", "203.0.113.0/25", "2001:db8:bad::/48", "192.0.2.66"];
const ALLOWLIST = ["10.0.0.0/8", "203.0.113.200"];

/** The same lists and record limit as the environment of the pipeline's processes. */
export function benchScorerEnv(maxRecordBytes: number): Record<string, string> {
  return {
    MALICIOUS_IPS: MALICIOUS.join(","),
    ALLOWLIST_IPS: ALLOWLIST.join(","),
    MAX_RECORD_BYTES: String(maxRecordBytes),
  };
}

/** The settings a production stage runs with: a short malicious list and an allowlist. */
export function benchSettings(): ScorerSettings {
  return {
    maxRecordBytes: 32 * 1024,
    scoring: DEFAULT_SCORING,
    reputation: Reputation.fromLists({ malicious: MALICIOUS, allowlist: ALLOWLIST }),
    privacy: { ipMasking: "off", ipHashKey: undefined },
    campaigns: { windowSeconds: 300, minEvents: 20 },
  };
}

/**
 * Records/s of each function, measured in interleaved slices of `sliceMs` so that all of them
 * see the same machine: other processes on a shared machine slow every one alike, and the
 * ratios stay honest even when the absolute rates move.
 */
function interleavedRates(
  fns: Array<(i: number) => unknown>,
  count: number,
  totalMs: number,
  sliceMs: number,
): number[] {
  const done = fns.map(() => 0);
  const spent = fns.map(() => 0);
  const cursor = fns.map(() => 0);
  let sink = 0;
  const deadline = performance.now() + totalMs;
  while (performance.now() < deadline) {
    fns.forEach((fn, k) => {
      const started = performance.now();
      let i = cursor[k] as number;
      let n = 0;
      do {
        for (let j = 0; j < 50; j++) {
          if (fn(i) !== undefined) sink++;
          i = i + 1 === count ? 0 : i + 1;
        }
        n += 50;
      } while (performance.now() - started < sliceMs);
      cursor[k] = i;
      done[k] = (done[k] as number) + n;
      spent[k] = (spent[k] as number) + (performance.now() - started);
    });
  }
  if (sink < 0) throw new Error("unreachable");
  return fns.map((_, k) => (done[k] as number) / ((spent[k] as number) / 1000));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** `rounds` rounds of interleaved measurements, `msPerRound` each; reports medians. */
export function measureCore(
  mix: RecordMix,
  opts: { records: number; rounds: number; msPerRound: number },
): CoreResult {
  const texts = Array.from({ length: opts.records }, (_, n) => mix.text(n));
  const ids = texts.map((_, n) => `${1_700_000_000_000 + Math.floor(n / 3)}-${n % 3}`);
  const settings = benchSettings();
  const parse = (i: number) => {
    try {
      return JSON.parse(texts[i] as string);
    } catch {
      return null;
    }
  };
  const scoreOnly = (i: number) => scoreRecord(texts[i] as string, settings);
  const full = (i: number) => {
    const scored = scoreRecord(texts[i] as string, settings);
    if (!scored.ok) return scored;
    const { line, alert } = outputsOf(scored, ids[i], settings.privacy);
    return alert ?? line;
  };
  // Warm-up: let the JIT settle on every path.
  interleavedRates([parse, scoreOnly, full], texts.length, 600, 50);
  const rounds: number[][] = [];
  for (let r = 0; r < opts.rounds; r++) {
    rounds.push(interleavedRates([parse, scoreOnly, full], texts.length, opts.msPerRound, 25));
  }
  const json = median(rounds.map((x) => x[0] as number));
  const core = median(rounds.map((x) => x[2] as number));
  return {
    json_parse_records_per_s: Math.round(json),
    core_records_per_s: Math.round(core),
    // Median of the per-round ratios: each round's rates were taken side by side.
    core_vs_json_parse: round3(median(rounds.map((x) => (x[2] as number) / (x[0] as number)))),
    normalise_score_records_per_s: Math.round(median(rounds.map((x) => x[1] as number))),
    core_sample_records: texts.length,
    core_sample_mean_bytes: Math.round(texts.reduce((n, t) => n + t.length, 0) / texts.length),
  };
}

export function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
