/**
 * The port through which scored events reach InfluxDB, and the engine both adapters share
 * (`influx-v2.ts`, `influx-v1.ts`): chunking, retries, bisection of refused requests and the
 * mapping of HTTP answers to per-line outcomes.
 *
 * The one promise that matters (reference §5): a line is "accepted" only when the request that
 * carried it was answered with success. The reader acknowledges a record on that word, so a
 * wrong "accepted" is a lost event; a wrong "failed" merely costs a rewrite, which is
 * idempotent (same series and timestamp overwrite).
 */

import { setMaxListeners } from "node:events";
import { backoffMs } from "../lib/backoff.ts";
import { Limiter } from "../lib/limiter.ts";
import { consoleLogger, type Logger } from "../lib/logger.ts";
import { parseRetryAfter } from "../lib/retry-after.ts";
import { sleep } from "../lib/time.ts";

/** One line of line protocol and the key of the record it belongs to. */
export interface PointLine {
  key: string;
  line: string;
}

/**
 * What became of one line.
 * - `accepted`: the database answered success for a request that carried this line.
 * - `rejected`: the database refused this very line for good (a 4xx other than
 *   401/403/404/413/429: malformed, outside retention...); the record is dead-lettered with
 *   `reason`.
 * - `failed`: transient or configuration trouble (5xx, 429, timeout, connection refused, bad
 *   token, missing database or bucket); the record is retried later, never acknowledged.
 */
export type WriteOutcome =
  | { key: string; status: "accepted" }
  | { key: string; status: "rejected"; reason: string }
  | { key: string; status: "failed"; reason: string };

/** Writes lines of line protocol to an InfluxDB-protocol database. */
export interface PointWriter {
  /**
   * Writes all lines; resolves only when every line has a definite outcome, one per line in
   * input order. Never rejects: every trouble becomes a `failed` or `rejected` outcome.
   */
  write(lines: PointLine[]): Promise<WriteOutcome[]>;
  /**
   * Waits for the writes in progress to settle; later writes resolve as `failed`.
   * Idempotent.
   */
  close(): Promise<void>;
}

/** Options of {@link createV2Writer} and {@link createV1Writer}. */
export interface WriterOptions {
  /**
   * Base URL of the database, e.g. `http://localhost:8086`. For the v1 API it may carry
   * `user:password@`, sent as the `u`/`p` query parameters InfluxDB 1.x understands.
   */
  url: string;
  /** API token: `Authorization: Token <token>` (InfluxDB 2/3, and 1.8+ as `user:password`). */
  token?: string;
  /** Organisation (v2 API); the v1 API has none and ignores it. */
  org: string;
  /** Bucket (v2 API) or database (v1 API). */
  bucket: string;
  /**
   * Time budget of one `write()` in milliseconds, retries and bisection included; requests
   * still open when it runs out are aborted and their lines are `failed`. Default 10,000.
   */
  timeoutMs?: number;
  /** Attempts per request when the answer is transient (5xx, 429, network). Default 3. */
  maxAttempts?: number;
  /** Default: `console`, so a missing database is never silent. */
  /** Where problems go; attributes never carry a token or a password. */
  logger?: Logger;
  /** Most lines sent in one request. Default 5,000 (InfluxData's recommended batch). */
  maxLinesPerRequest?: number;
  /** Most bytes of line protocol in one request. Default 4 MiB, well below server limits. */
  maxBytesPerRequest?: number;
  /** Most requests in flight at once, across all writes of this writer. Default 4. */
  concurrency?: number;
}

/** The writer's options are unusable (an empty bucket, a URL that does not parse...). */
export class WriterConfigError extends Error {
  override readonly name = "WriterConfigError";
}

/**
 * How one HTTP write request ended, as an adapter reports it to the engine.
 * `accepted` must mean the server answered success for exactly this request.
 */
export type SendResult =
  | { kind: "accepted" }
  | { kind: "http"; status: number; message: string; retryAfterMs?: number }
  | { kind: "network"; message: string };

/**
 * Sends one request carrying `lines` (joined by `\n`); must honour `signal` (this request's own)
 * by aborting the request. May throw: the engine treats a throw as a network failure.
 */
export type SendLines = (lines: string[], signal: AbortSignal) => Promise<SendResult>;

/** The longest reason handed on to the dead-letter stream or the logs. */
export const MAX_REASON_CHARS = 300;

const DEFAULTS = {
  timeoutMs: 10_000,
  maxAttempts: 3,
  maxLinesPerRequest: 5_000,
  maxBytesPerRequest: 4 * 1024 * 1024,
  concurrency: 4,
};
/** First retry after ~50-100 ms, doubling: three attempts fit well inside a Lambda. */
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 2_000;

/** How the engine treats an answer. */
type Verdict =
  | "accepted"
  /** This request's content was refused: bisect down to the offending lines. */
  | "refused"
  /** The request is too large: split, but a single line too large is not a record's fault. */
  | "too-large"
  /** Worth another attempt: 5xx, 429, 408, network, timeout. */
  | "transient"
  /** Retrying will not help before someone fixes configuration: 401, 403, 404, 3xx... */
  | "config";

function verdict(result: SendResult): Verdict {
  if (result.kind === "accepted") return "accepted";
  if (result.kind === "network") return "transient";
  const { status } = result;
  if (status === 401 || status === 403 || status === 404) return "config";
  if (status === 413) return "too-large";
  if (status === 408 || status === 425 || status === 429 || status >= 500) return "transient";
  if (status >= 400) return "refused";
  // A 1xx/2xx other than success, or a redirect: not a database answering its write API.
  return "config";
}

/** Trims a server's text to one readable line of at most {@link MAX_REASON_CHARS}. */
export function trimReason(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= MAX_REASON_CHARS ? flat : `${flat.slice(0, MAX_REASON_CHARS - 1)}…`;
}

/**
 * The readable message of an InfluxDB error body: `{"error": …}` (1.x), `{"message": …}`
 * (2.x/3.x), else the text itself.
 */
/**
 * The result of an answer that was not a success: the database's reason (from its JSON error
 * body when it has one) and how long it asked us to wait.
 */
export function httpFailure(
  status: number,
  body: string,
  retryAfter: string | null | undefined,
  fallback = "",
): SendResult {
  const retryAfterMs = parseRetryAfter(retryAfter, Date.now());
  return {
    kind: "http",
    status,
    message: errorText(body) || fallback,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/** The database's base URL, checked: it parses, is http(s), and a bucket (database) is named. */
export function databaseUrl(raw: string, bucket: string): URL {
  if (!bucket) throw new WriterConfigError("the writer needs a bucket (the database on 1.x)");
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new WriterConfigError("the InfluxDB URL does not parse", { cause });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new WriterConfigError(`the InfluxDB URL must be http(s), not ${url.protocol}`);
  }
  return url;
}

export function errorText(body: string): string {
  const trimmed = body.trim();
  if (trimmed.startsWith("{")) {
    try {
      const json = JSON.parse(trimmed) as { error?: unknown; message?: unknown };
      if (typeof json.error === "string") return json.error;
      if (typeof json.message === "string") return json.message;
    } catch {
      // Not JSON after all: the raw text is the best reason there is.
    }
  }
  return trimmed;
}

/** What one `write()` learnt, summarised in one log line at its end. */
interface WriteReport {
  config?: string;
  transient?: string;
  failedLines: number;
}

/** How the engine names its target in messages, e.g. `database "waf"`. */
export interface WriterTarget {
  /** Short name of the API, for logs: `InfluxDB v1 API`. */
  api: string;
  /** What a 404 means here, e.g. `database "waf" not found`. */
  notFound: string;
}

/**
 * Builds a {@link PointWriter} around an adapter's `send`: splits the lines into requests,
 * retries transient answers with backoff and jitter within the time budget, and bisects a
 * refused request down to the lines the database refuses on their own.
 *
 * Bisection costs O(k log n) requests for k bad lines among n, and rewrites the good lines of
 * a refused request: harmless, because InfluxDB 1.x writes the good lines of a request that
 * also has bad ones, and a rewrite of the same series and timestamp overwrites.
 */
export function createLineWriter(
  target: WriterTarget,
  send: SendLines,
  opts: Omit<WriterOptions, "url" | "token" | "org" | "bucket">,
): PointWriter {
  const timeoutMs = positive("timeoutMs", opts.timeoutMs, DEFAULTS.timeoutMs);
  const maxAttempts = positive("maxAttempts", opts.maxAttempts, DEFAULTS.maxAttempts);
  const maxLines = positive(
    "maxLinesPerRequest",
    opts.maxLinesPerRequest,
    DEFAULTS.maxLinesPerRequest,
  );
  const maxBytes = positive(
    "maxBytesPerRequest",
    opts.maxBytesPerRequest,
    DEFAULTS.maxBytesPerRequest,
  );
  const logger = opts.logger ?? consoleLogger;
  const limiter = new Limiter(positive("concurrency", opts.concurrency, DEFAULTS.concurrency));
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;

  async function writeAll(lines: PointLine[]): Promise<WriteOutcome[]> {
    const outcomes: (WriteOutcome | undefined)[] = new Array(lines.length);
    const report: WriteReport = { failedLines: 0 };
    const deadlineAt = Date.now() + timeoutMs;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    // A forgotten deadline must not keep a CLI or a test process alive.
    timer.unref?.();
    const signal = deadline.signal;
    // Every pending retry sleep and request listens to it; a bisection can have many.
    setMaxListeners(0, signal);

    const fail = (indices: number[], reason: string) => {
      for (const i of indices) outcomes[i] = { key: keyOf(lines, i), status: "failed", reason };
      report.failedLines += indices.length;
    };

    /** One request, retried while the answer is transient and time remains. */
    const attempt = async (indices: number[]): Promise<SendResult> => {
      const body = indices.map((i) => (lines[i] as PointLine).line);
      let result: SendResult = { kind: "network", message: "not sent" };
      for (let n = 1; n <= maxAttempts; n++) {
        if (signal.aborted) return timedOut(timeoutMs);
        result = await limiter.run(() => sendSafely(send, body, signal));
        if (signal.aborted && result.kind !== "accepted") return timedOut(timeoutMs);
        if (verdict(result) !== "transient" || n === maxAttempts) return result;
        const backoff = backoffMs(
          n,
          { baseMs: BACKOFF_BASE_MS, maxMs: BACKOFF_MAX_MS },
          Math.random(),
        );
        const wait = Math.max(backoff, result.kind === "http" ? (result.retryAfterMs ?? 0) : 0);
        // A retry that could only start after the budget is spent: keep the server's answer.
        if (Date.now() + wait >= deadlineAt) return result;
        if (!(await sleep(wait, signal))) return timedOut(timeoutMs);
      }
      return result;
    };

    const writeRange = async (indices: number[]): Promise<void> => {
      const result = await attempt(indices);
      switch (verdict(result)) {
        case "accepted":
          for (const i of indices) outcomes[i] = { key: keyOf(lines, i), status: "accepted" };
          return;
        case "refused":
        case "too-large": {
          if (verdict(result) === "refused" && droppedAll(result, indices.length)) {
            const reason = explain(target, result);
            for (const i of indices)
              outcomes[i] = { key: keyOf(lines, i), status: "rejected", reason };
            return;
          }
          if (indices.length > 1) {
            const half = Math.ceil(indices.length / 2);
            await Promise.all([
              writeRange(indices.slice(0, half)),
              writeRange(indices.slice(half)),
            ]);
            return;
          }
          const reason = explain(target, result);
          if (verdict(result) === "refused") {
            const i = indices[0] as number;
            outcomes[i] = { key: keyOf(lines, i), status: "rejected", reason };
          } else {
            report.transient ??= reason;
            fail(indices, reason);
          }
          return;
        }
        case "config": {
          const reason = explain(target, result);
          report.config ??= reason;
          fail(indices, reason);
          return;
        }
        case "transient": {
          const reason = explain(target, result);
          report.transient ??= reason;
          fail(indices, reason);
          return;
        }
      }
    };

    try {
      const valid: number[] = [];
      lines.forEach((l, i) => {
        // An empty line would be "written" with a 204 and store nothing: never call it accepted.
        if (typeof l?.line !== "string" || l.line.trim() === "") {
          outcomes[i] = { key: keyOf(lines, i), status: "rejected", reason: "empty line protocol" };
        } else valid.push(i);
      });
      // allSettled: every request has ended before outcomes are handed out, even after a throw.
      const settled = await Promise.allSettled(
        chunk(valid, lines, maxLines, maxBytes).map(writeRange),
      );
      const thrown = settled.find((s) => s.status === "rejected");
      if (thrown) throw thrown.reason;
    } catch (err) {
      // A bug of ours must not turn into an unhandled rejection or a wrong "accepted".
      const left = lines.map((_, i) => i).filter((i) => outcomes[i] === undefined);
      const reason = trimReason(`writer error: ${(err as Error)?.message ?? String(err)}`);
      report.transient ??= reason;
      fail(left, reason);
    } finally {
      clearTimeout(timer);
    }

    if (report.config !== undefined) {
      logger.error(`${target.api}: ${report.config}`, {
        failedLines: report.failedLines,
        lines: lines.length,
      });
    } else if (report.transient !== undefined) {
      logger.warn(`${target.api}: write failed, will be retried: ${report.transient}`, {
        failedLines: report.failedLines,
        lines: lines.length,
      });
    }
    return lines.map(
      (_, i) =>
        outcomes[i] ?? {
          key: keyOf(lines, i),
          status: "failed",
          reason: "no outcome (writer bug)",
        },
    );
  }

  return {
    write(lines: PointLine[]): Promise<WriteOutcome[]> {
      if (!Array.isArray(lines)) return Promise.resolve([]);
      if (closed) {
        return Promise.resolve(
          lines.map((_, i) => ({
            key: keyOf(lines, i),
            status: "failed" as const,
            reason: "writer is closed",
          })),
        );
      }
      const run = writeAll(lines);
      inFlight.add(run);
      void run.finally(() => inFlight.delete(run));
      return run;
    },
    async close(): Promise<void> {
      closed = true;
      await Promise.allSettled([...inFlight]);
    },
  };
}

/**
 * Whether InfluxDB said it dropped every point of the request (`partial write: points beyond
 * retention policy dropped=5` for 5 lines; 1.x and 2.x word it alike). Then each line is refused
 * on its own and bisecting would cost 2n requests to learn nothing: a batch against a full
 * `max-values-per-tag` or a short retention policy is all refused. Unparsable lines are not
 * counted in `dropped`, so a request with any of them is still bisected.
 */
function droppedAll(result: SendResult, lineCount: number): boolean {
  if (result.kind !== "http") return false;
  const m = /\bpartial write\b.*\bdropped=(\d+)\s*$/s.exec(result.message.trim());
  return m !== null && Number(m[1]) === lineCount;
}

function keyOf(lines: PointLine[], i: number): string {
  return String(lines[i]?.key);
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 1) {
    throw new WriterConfigError(`${name} must be a number ≥ 1, got ${value}`);
  }
  return Math.floor(value);
}

/** Splits `indices` into requests of at most `maxLines` lines and (unless one line alone is
 * larger) `maxBytes` bytes. */
function chunk(
  indices: number[],
  lines: PointLine[],
  maxLines: number,
  maxBytes: number,
): number[][] {
  const chunks: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  for (const i of indices) {
    const size = Buffer.byteLength((lines[i] as PointLine).line) + 1;
    if (current.length > 0 && (current.length >= maxLines || bytes + size > maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(i);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

async function sendSafely(
  send: SendLines,
  lines: string[],
  signal: AbortSignal,
): Promise<SendResult> {
  // Each request listens to the engine's signal through its own child, released when it ends.
  const request = childSignal(signal);
  try {
    return await send(lines, request.signal);
  } catch (err) {
    return { kind: "network", message: networkMessage(err) };
  } finally {
    request.release();
  }
}

/** `fetch failed` says nothing; its cause (`connect ECONNREFUSED 127.0.0.1:8086`) does. */
export function networkMessage(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown; cause?: unknown } | undefined;
  const cause = e?.cause as { message?: unknown; code?: unknown } | undefined;
  const message = typeof e?.message === "string" && e.message !== "" ? e.message : String(err);
  const detail = typeof cause?.message === "string" && cause.message !== "" ? cause.message : "";
  const code =
    typeof e?.code === "string" ? e.code : typeof cause?.code === "string" ? cause.code : "";
  const parts = [message, detail && detail !== message ? detail : ""].filter(Boolean).join(": ");
  return code && !parts.includes(code) ? `${parts} (${code})` : parts;
}

function timedOut(timeoutMs: number): SendResult {
  return { kind: "network", message: `timed out after ${timeoutMs} ms` };
}

function explain(target: WriterTarget, result: SendResult): string {
  if (result.kind === "accepted") return "accepted";
  if (result.kind === "network") return trimReason(`${target.api} unreachable: ${result.message}`);
  const text = result.message || "(no error text)";
  switch (result.status) {
    case 401:
      return trimReason(
        `${target.api} answered 401, authentication failed (check the token): ${text}`,
      );
    case 403:
      return trimReason(`${target.api} answered 403, the token may not write here: ${text}`);
    case 404:
      return trimReason(`${target.api} answered 404, ${target.notFound}: ${text}`);
    default:
      return trimReason(`${target.api} answered ${result.status}: ${text}`);
  }
}

/**
 * A signal that aborts with `parent` and can be let go of after one request: listeners on a
 * long-lived signal would pile up (and Node warns past 10).
 */
function childSignal(parent: AbortSignal): { signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  if (parent.aborted) {
    controller.abort(parent.reason);
    return { signal: controller.signal, release: () => {} };
  }
  const onAbort = () => controller.abort(parent.reason);
  parent.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    release: () => parent.removeEventListener("abort", onAbort),
  };
}
