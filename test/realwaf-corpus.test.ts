/**
 * Every record the real ModSecurity 3.0.9 + OWASP CRS wrote (test/fixtures/realwaf) parses,
 * keeps its transaction, and — where rule 949110 is present — gets exactly ModSecurity's own
 * `Total Score` as its anomaly score (reference §2, §3). The records reach the scorer the way the
 * reader hands them over: bytes from the stream decoded as UTF-8 (raw non-UTF-8 bytes included).
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../core/config.ts";
import { scoreRecord, scorerSettingsFrom } from "../core/scorer.ts";
import { corpusJson, corpusLines } from "./fixtures/records.ts";

const settings = scorerSettingsFrom(loadConfig({}));

interface RawMessage {
  message?: string;
  details?: { ruleId?: string };
}

/** ModSecurity's own figure, read independently of the scorer: 949110's `Total Score: N`. */
function totalScore(text: string): number | undefined {
  const messages = (JSON.parse(text) as { transaction: { messages?: RawMessage[] } }).transaction
    .messages;
  const m = messages?.find((x) => x.details?.ruleId === "949110");
  if (!m) return undefined;
  const match = /\(Total Score: (\d+)\)/.exec(m.message ?? "");
  if (!match) throw new Error(`949110 without a Total Score: ${m.message}`);
  return Number(match[1]);
}

describe.each([
  // file, its labels, records in it, records with 949110 (counted with grep when added)
  ["crs3-pl1.jsonl.gz", "labels-crs3-pl1.jsonl.gz", 1937, 1886],
  ["crs3-pl1-detect.jsonl.gz", "labels-crs3-pl1-detect.jsonl.gz", 1937, 1891],
  ["crs3-pl2.jsonl.gz", "labels-crs3-pl2.jsonl.gz", 2385, 2253],
  ["crs3-pl2-detect.jsonl.gz", "labels-crs3-pl2-detect.jsonl.gz", 2385, 2264],
  ["crs4-pl1-sample.jsonl.gz", "labels-crs4-pl1-sample.jsonl.gz", 147, 145],
  ["crs4-pl1-detect-sample.jsonl.gz", "labels-crs4-pl1-detect-sample.jsonl.gz", 147, 146],
])("the real CRS corpus %s", (file, labelsFile, records, withTotal) => {
  const lines = corpusLines(file);
  const labels = corpusJson<{ unique_id: string }>(labelsFile);

  it("parses every record, with its unique_id as transaction id", () => {
    expect(lines).toHaveLength(records);
    expect(labels).toHaveLength(lines.length);
    const failures: string[] = [];
    lines.forEach((line, i) => {
      const r = scoreRecord(line.toString("utf8"), settings);
      if (!r.ok) failures.push(`line ${i + 1}: ${r.reason}`);
      else if (r.event.txId !== labels[i]?.unique_id)
        failures.push(`line ${i + 1}: tx ${r.event.txId} ≠ ${labels[i]?.unique_id}`);
    });
    expect(failures).toEqual([]);
  });

  it("scores ModSecurity's own Total Score wherever 949110 is present", () => {
    let compared = 0;
    const mismatches: string[] = [];
    lines.forEach((line, i) => {
      const text = line.toString("utf8");
      const total = totalScore(text);
      if (total === undefined) return;
      compared++;
      const r = scoreRecord(text, settings);
      if (!r.ok || r.score.anomalyScore !== total)
        mismatches.push(
          `line ${i + 1}: Total Score ${total}, scored ${r.ok ? r.score.anomalyScore : r.reason}`,
        );
    });
    expect(mismatches).toEqual([]);
    expect(compared).toBe(withTotal);
  });
});
