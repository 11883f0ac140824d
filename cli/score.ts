/**
 * `waf score [FILE]` (reference §7): JSON lines in, exactly one JSON line out per non-blank input
 * line, in order. No services. Exit 0 even when some lines are invalid.
 *
 * `waf score --report [FILE] [--labels FILE]`: the level table of the active profile
 * (`SCORING_PROFILE`) by what the firewall did, by CRS rule category and by score against the
 * threshold, instead of one line per record.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { createGunzip } from "node:zlib";
import { loadConfig } from "../core/config.ts";
import { maskIp } from "../core/privacy/privacy.ts";
import { type ScorerSettings, scoreRecord, scorerSettingsFrom } from "../core/scorer.ts";
import { LEVELS, type LevelReport, ReportBuilder } from "../core/scoring/report.ts";
import { readMaliciousIpsFile } from "../functions/shared/malicious-ips.ts";
import { parse, UsageError } from "./args.ts";
import type { Io } from "./commands.ts";

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
    blocked: score.blocked,
    profile: score.profile,
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

/** Longest label kept from a labels file (it becomes a row title). */
const MAX_LABEL = 40;

/**
 * Labels of a corpus: JSON lines with the record's transaction ID (`unique_id`, `tx_id` or
 * `id`) and a `kind` (e.g. `attack`, `benign`). Lines without both are skipped.
 */
export async function readLabels(input: Readable): Promise<Map<string, string>> {
  const labels = new Map<string, string>();
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of rl) {
    if (line.trim() === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof v !== "object" || v === null) continue;
    const o = v as Record<string, unknown>;
    const id = [o.unique_id, o.tx_id, o.id].find((x) => typeof x === "string" && x !== "");
    if (typeof id === "string" && typeof o.kind === "string" && o.kind.trim() !== "") {
      labels.set(id, o.kind.trim().slice(0, MAX_LABEL));
    }
  }
  return labels;
}

/** Scores every non-blank line of `input` into the level table. */
export async function reportStream(
  input: Readable,
  settings: ScorerSettings,
  labels?: ReadonlyMap<string, string>,
): Promise<LevelReport> {
  const builder = new ReportBuilder();
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of rl) {
    if (line.trim() === "") continue;
    const r = scoreRecord(line, settings);
    if (!r.ok) {
      builder.invalidRecord();
      continue;
    }
    const label = labels === undefined ? undefined : (labels.get(r.event.txId) ?? "unlabelled");
    builder.add(r.event, r.score, label);
  }
  return builder.build();
}

const num = (n: number) => n.toLocaleString("en-US");

/** The level table as Markdown (readable in a terminal, pastable into a document). */
export function formatReport(report: LevelReport, settings: ScorerSettings): string {
  const t = settings.scoring.thresholds;
  const lines = [
    `profile ${settings.scoring.profile ?? "seed"}: ${num(report.records)} records scored, ` +
      `${num(report.invalid)} invalid; levels critical ≥ ${t.critical}, high ≥ ${t.high}, ` +
      `medium ≥ ${t.medium}; alerts = critical and not allowlisted`,
  ];
  const header = ["", "records", ...LEVELS, "alerts"];
  for (const section of report.sections) {
    const rows = section.rows.map((r) => [
      r.label,
      num(r.records),
      ...LEVELS.map((l) => num(r.levels[l])),
      num(r.alerts),
    ]);
    const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
    const cells = (r: string[]) =>
      `| ${r.map((c, i) => (i === 0 ? c.padEnd(width[i] ?? 0) : c.padStart(width[i] ?? 0))).join(" | ")} |`;
    lines.push(
      "",
      `${section.title}:`,
      "",
      cells(header),
      `| ${width.map((w, i) => (i === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`)).join(" | ")} |`,
      ...rows.map(cells),
    );
  }
  return `${lines.join("\n")}\n`;
}

/**
 * A file (`.gz` is gunzipped) or stdin (`-` or none). Bytes that are not UTF-8 become U+FFFD,
 * which scoring never depends on.
 */
export function openInput(file: string | undefined): Readable {
  if (file === undefined || file === "-") return process.stdin;
  const raw = createReadStream(file);
  if (!file.endsWith(".gz")) return raw.setEncoding("utf8");
  const gunzip = createGunzip();
  raw.on("error", (err) => gunzip.destroy(err));
  return raw.pipe(gunzip).setEncoding("utf8");
}

/** `waf score [FILE]`, `waf score --report [FILE] [--labels FILE]`; resolves with the exit code. */
export async function scoreCommand(
  args: string[],
  env: Record<string, string | undefined>,
  io: Io,
): Promise<number> {
  const { values, positionals } = parse("score", args, {
    report: { type: "boolean" },
    labels: { type: "string" },
  });
  if (positionals.length > 1) {
    throw new UsageError(`waf score: one FILE at most (got ${positionals.length})`);
  }
  if (values.labels !== undefined && !values.report) {
    throw new UsageError("waf score: --labels goes with --report");
  }
  const config = loadConfig(env);
  const settings = scorerSettingsFrom(config, {
    maliciousEntries: readMaliciousIpsFile(config.MALICIOUS_IPS_FILE),
  });
  const file = positionals[0];
  try {
    if (values.report) {
      const labels =
        values.labels === undefined ? undefined : await readLabels(openInput(values.labels));
      const report = await reportStream(openInput(file), settings, labels);
      io.stdout.write(formatReport(report, settings));
      return 0;
    }
    const { scored, invalid } = await scoreStream(openInput(file), io.stdout, settings);
    io.stderr.write(`waf score: ${scored} scored, ${invalid} invalid\n`);
    return 0;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (typeof e?.code === "string" && typeof e.path === "string") {
      io.stderr.write(`waf score: cannot read ${e.path}: ${e.code}\n`);
      return 1;
    }
    if (e?.code === "Z_DATA_ERROR" || e?.code === "Z_BUF_ERROR") {
      io.stderr.write(`waf score: not a valid .gz file: ${e.message}\n`);
      return 1;
    }
    throw err;
  }
}
