/**
 * `waf score [FILE]` (SPEC §7): JSON lines in, exactly one JSON line out per non-blank input
 * line, in order. No services. Exit 0 even when some lines are invalid.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { maskIp } from "../core/privacy/privacy.ts";
import { type ScorerSettings, scoreRecord } from "../core/scorer.ts";

/** The JSON line for one input line. */
export function scoreLine(text: string, lineNo: number, settings: ScorerSettings): string {
  const r = scoreRecord(text, settings);
  if (!r.ok) return JSON.stringify({ line: lineNo, error: r.reason });
  const { event, score } = r;
  return JSON.stringify({
    tx_id: event.txId,
    client_ip: maskIp(event.clientIp, settings.privacy),
    anomaly_score: score.anomalyScore,
    severity: score.severity,
    severity_level: score.level,
    rule_id: score.ruleId,
    categories: score.categories,
    alert: score.alert,
  });
}

/** Streams `input` to `output`, honouring back-pressure. Resolves with the counts. */
export async function scoreStream(
  input: Readable,
  output: Writable,
  settings: ScorerSettings,
): Promise<{ scored: number; invalid: number }> {
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  let scored = 0;
  let invalid = 0;
  let buffer = "";
  const flush = async () => {
    if (buffer === "") return;
    const chunk = buffer;
    buffer = "";
    if (!output.write(chunk)) await new Promise<void>((resolve) => output.once("drain", resolve));
  };
  for await (const line of rl) {
    lineNo++;
    if (line.trim() === "") continue;
    const out = scoreLine(line, lineNo, settings);
    if (out.startsWith('{"line":')) invalid++;
    else scored++;
    buffer += `${out}\n`;
    if (buffer.length > 64 * 1024) await flush();
  }
  await flush();
  return { scored, invalid };
}

export function openInput(file: string | undefined): Readable {
  return file === undefined || file === "-"
    ? process.stdin
    : createReadStream(file, { encoding: "utf8" });
}
