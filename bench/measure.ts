/** Small measuring helpers: process memory from /proc, percentiles, progress on stderr. */
import { readFileSync } from "node:fs";
import type { RecordMix } from "./records.ts";

/** VmRSS and VmHWM (peak RSS over the process's life) of `pid`, in MiB; undefined once it is gone. */
export function procMemory(pid: number): { rssMb: number; hwmMb: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
    const rss = kb("VmRSS");
    const hwm = kb("VmHWM");
    if (!Number.isFinite(rss) || !Number.isFinite(hwm)) return undefined;
    return { rssMb: rss / 1024, hwmMb: hwm / 1024 };
  } catch {
    return undefined;
  }
}

/** Samples a process's RSS every `everyMs`; `peakMb` also folds in the kernel's own high-water mark. */
export class RssSampler {
  private timer: NodeJS.Timeout | undefined;
  private maxRss = 0;
  private maxHwm = 0;
  private last = 0;
  samples = 0;

  constructor(
    private readonly pid: number,
    everyMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  sample(): void {
    const m = procMemory(this.pid);
    if (!m) return;
    this.samples++;
    this.last = m.rssMb;
    this.maxRss = Math.max(this.maxRss, m.rssMb);
    this.maxHwm = Math.max(this.maxHwm, m.hwmMb);
  }

  /** Stops sampling (takes one last sample first: call it while the process still runs). */
  stop(): { peakMb: number; sampledPeakMb: number; lastMb: number } {
    this.sample();
    clearInterval(this.timer);
    return {
      peakMb: Math.max(this.maxRss, this.maxHwm),
      sampledPeakMb: this.maxRss,
      lastMb: this.last,
    };
  }
}

/** Nearest-rank percentile of unsorted values. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

const started = performance.now();

/** Progress for people watching: stderr only, so `--json` keeps stdout clean. */
export function progress(message: string): void {
  const t = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${t}s] ${message}\n`);
}

/** CPU seconds (user + system) a process has used so far; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100;
  } catch {
    return undefined;
  }
}

/** CPU used by named processes between `start()` and `stop()`, as cores busy on average. */
export class CpuMeter {
  private readonly before = new Map<string, number>();
  private startedAt = 0;

  constructor(private readonly pids: () => Record<string, number | undefined>) {}

  start(): void {
    this.startedAt = performance.now();
    this.before.clear();
    for (const [name, pid] of Object.entries(this.pids())) {
      const s = pid === undefined ? undefined : cpuSeconds(pid);
      if (s !== undefined) this.before.set(name, s);
    }
  }

  /** Average cores used per process over the interval (1.0 = one core fully busy). */
  stop(): Record<string, number> {
    const seconds = (performance.now() - this.startedAt) / 1000;
    const out: Record<string, number> = {};
    for (const [name, pid] of Object.entries(this.pids())) {
      const s = pid === undefined ? undefined : cpuSeconds(pid);
      const b = this.before.get(name);
      if (s !== undefined && b !== undefined)
        out[name] = Math.round(((s - b) / seconds) * 100) / 100;
    }
    return out;
  }
}

/** What every phase that runs the stack shares: the records, the logs and the reader's tuning. */
export interface PhaseOptions {
  mix: RecordMix;
  /** First record index the phase may use (earlier ones belong to other phases). */
  firstIndex: number;
  logDir: string;
  batchSize: number;
  batchWindowMs: number;
  maxInFlight: number;
  /** Extra environment for every process (reputation lists, MAX_RECORD_BYTES). */
  env: Record<string, string>;
}
