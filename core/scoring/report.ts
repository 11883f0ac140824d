/**
 * The level table of `waf score --report` (reference §7): how a profile grades a set of audit
 * records, by what the firewall did (blocked, reached the application), by CRS rule category,
 * and by score against the threshold — the rows a user reads on their own log before choosing
 * a profile. Optional labels (a corpus's `kind`: attack, benign) add one row per label. Pure.
 */
import type { WafEvent } from "../event/types.ts";
import { categoryName } from "./categories.ts";
import { crsFacts } from "./facts.ts";
import type { Score, SeverityLevel } from "./score.ts";

export const LEVELS: readonly SeverityLevel[] = ["low", "medium", "high", "critical"];

export interface ReportRow {
  label: string;
  records: number;
  levels: Record<SeverityLevel, number>;
  /** Critical and not allowlisted: what would alert. */
  alerts: number;
}

export interface ReportSection {
  title: string;
  rows: ReportRow[];
}

export interface LevelReport {
  records: number;
  invalid: number;
  sections: ReportSection[];
}

/** At most this many distinct labels get a row; the rest are counted under "other labels". */
const MAX_LABELS = 20;

function newRow(label: string): ReportRow {
  return { label, records: 0, levels: { low: 0, medium: 0, high: 0, critical: 0 }, alerts: 0 };
}

function add(row: ReportRow, score: Score): void {
  row.records++;
  row.levels[score.level]++;
  if (score.alert) row.alerts++;
}

const BANDS = [
  "below the threshold",
  "at the threshold (one critical rule)",
  "above, under 2× the threshold",
  "2× to under 4× the threshold",
  "4× the threshold or more",
] as const;

function band(anomaly: number, threshold: number): (typeof BANDS)[number] {
  if (anomaly < threshold) return BANDS[0];
  if (anomaly === threshold) return BANDS[1];
  if (anomaly < 2 * threshold) return BANDS[2];
  if (anomaly < 4 * threshold) return BANDS[3];
  return BANDS[4];
}

/**
 * Accumulates scored records into the level table.
 * @example
 * const r = new ReportBuilder();
 * for (const { event, score } of scored) r.add(event, score);
 * r.invalidRecord(); // a line that did not parse
 * const table = r.build();
 */
export class ReportBuilder {
  private records = 0;
  private invalid = 0;
  private readonly all = newRow("all records");
  private readonly outcome = new Map<string, ReportRow>();
  private readonly categories = new Map<string, ReportRow>();
  private readonly bands = new Map<string, ReportRow>();
  private readonly labels = new Map<string, ReportRow>();

  /** Adds one scored record; `label` is its corpus label when labels were given. */
  add(event: WafEvent, score: Score, label?: string): void {
    this.records++;
    add(this.all, score);
    const outcome =
      score.blocked === true
        ? "blocked"
        : score.blocked === false
          ? "reached the application"
          : "not stated (treated as reached)";
    add(this.row(this.outcome, outcome), score);
    for (const prefix of score.categoryPrefixes) {
      add(this.row(this.categories, prefix), score);
    }
    if (score.categoryPrefixes.length === 0) add(this.row(this.categories, ""), score);
    add(this.row(this.bands, band(score.anomalyScore, crsFacts(event).threshold)), score);
    if (label !== undefined) {
      const key = this.labels.has(label) || this.labels.size < MAX_LABELS ? label : "other labels";
      add(this.row(this.labels, key), score);
    }
  }

  /** Counts a line that could not be scored. */
  invalidRecord(): void {
    this.invalid++;
  }

  private row(map: Map<string, ReportRow>, key: string): ReportRow {
    let r = map.get(key);
    if (r === undefined) {
      r = newRow(key);
      map.set(key, r);
    }
    return r;
  }

  build(): LevelReport {
    const outcomeOrder = ["blocked", "reached the application", "not stated (treated as reached)"];
    const sections: ReportSection[] = [
      { title: "all", rows: [this.all] },
      {
        title: "by what the firewall did",
        rows: outcomeOrder.flatMap((k) => this.outcome.get(k) ?? []),
      },
      {
        title: "by CRS rule category (a record counts in each category of its rules)",
        rows: [...this.categories.entries()]
          .sort(([a], [b]) => (a === "" ? 1 : b === "" ? -1 : a.localeCompare(b)))
          .map(([prefix, row]) => ({
            ...row,
            label: prefix === "" ? "no rule category" : `${categoryName(prefix)} (${prefix})`,
          })),
      },
      {
        title: "by anomaly score against the record's inbound threshold",
        rows: BANDS.flatMap((b) => this.bands.get(b) ?? []),
      },
    ];
    if (this.labels.size > 0) {
      sections.push({
        title: "by label",
        rows: [...this.labels.entries()]
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([, row]) => row),
      });
    }
    return { records: this.records, invalid: this.invalid, sections };
  }
}
