/**
 * Delivering one notification: attempts with a timeout each, exponential backoff with jitter,
 * one deadline for everything, and a per-channel circuit breaker so a dead receiver costs
 * nothing once it is known to be dead.
 *
 * Every attempt ends in one of five ways, and only two are retried:
 * - `ok` — the receiver answered 2xx;
 * - `rejected` — the receiver answered and refused for good (4xx other than 408/429): not retried;
 * - `failed` — nothing was delivered (5xx, 408, 429, connection refused, DNS): retried;
 * - `ambiguous` — it may have been delivered (timeout, connection reset mid-request): retried
 *   only when the channel is idempotent (PagerDuty's dedup_key; the webhook's delivery id),
 *   never for Slack or email, which would then post twice;
 * - `invalid` — our own code could not build or send the request (the channel threw): nothing
 *   left, not retried, and not counted against the receiver: only the receiver's answers move
 *   the circuit breaker, so no request field can open it (issue 12 row 4).
 */
import { backoffMs } from "../lib/backoff.ts";
import { parseRetryAfter } from "../lib/retry-after.ts";
import { type Clock, systemClock } from "../lib/time.ts";

export type AttemptResult =
  | { ok: true; status: number }
  | {
      ok: false;
      kind: "rejected" | "failed" | "ambiguous";
      status?: number;
      /** Short, secret-free reason ("HTTP 500", "timeout", "ECONNREFUSED"). */
      detail: string;
      retryAfterMs?: number;
    };

export interface DeliveryPolicy {
  /** Per attempt. */
  attemptTimeoutMs: number;
  maxAttempts: number;
  /** First backoff; doubled per retry, with ±50 % jitter, capped by `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Whether to retry after an ambiguous failure (safe only when the receiver deduplicates). */
  retryAmbiguous: boolean;
}

export const DEFAULT_POLICY: Omit<DeliveryPolicy, "retryAmbiguous"> = {
  attemptTimeoutMs: 3000,
  maxAttempts: 4,
  baseDelayMs: 250,
  maxDelayMs: 2000,
};

export interface DeliveryOutcome {
  ok: boolean;
  attempts: number;
  status?: number;
  /** Why it failed: the last attempt's kind, or what stopped the next one. */
  reason?: "rejected" | "failed" | "ambiguous" | "invalid" | "circuit-open" | "deadline";
  detail?: string;
}

export type CircuitState = "closed" | "open" | "half-open";

export interface CircuitBreakerOptions {
  /** Consecutive failed attempts that open the circuit. */
  failureThreshold: number;
  /** How long it stays open before one probe is let through. */
  cooldownMs: number;
  now?: () => number;
  onChange?: (state: CircuitState, failures: number) => void;
}

/**
 * A per-channel circuit breaker (in memory, per process or Lambda container). `rejected`
 * answers count as success: the receiver is up, the request was wrong.
 */
export class CircuitBreaker {
  private state_: CircuitState = "closed";
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private readonly now: () => number;

  constructor(private readonly opts: CircuitBreakerOptions) {
    this.now = opts.now ?? Date.now;
  }

  get state(): CircuitState {
    return this.state_;
  }

  /** Whether an attempt may go out now; in half-open, only one probe at a time. */
  tryAcquire(): boolean {
    if (this.state_ === "closed") return true;
    if (this.state_ === "open") {
      if (this.now() - this.openedAt < this.opts.cooldownMs) return false;
      this.set("half-open");
    }
    if (this.probing) return false;
    this.probing = true;
    return true;
  }

  /** Gives back an attempt that reached no receiver: the state stays as it was. */
  release(): void {
    this.probing = false;
  }

  success(): void {
    this.probing = false;
    this.failures = 0;
    if (this.state_ !== "closed") this.set("closed");
  }

  failure(): void {
    this.probing = false;
    this.failures++;
    if (
      this.state_ === "half-open" ||
      (this.state_ === "closed" && this.failures >= this.opts.failureThreshold)
    ) {
      this.openedAt = this.now();
      this.set("open");
    }
  }

  private set(state: CircuitState): void {
    this.state_ = state;
    this.opts.onChange?.(state, this.failures);
  }
}

/**
 * Runs `attempt` until it succeeds, fails for good, or `deadlineAt` (epoch ms) leaves no time.
 * Never throws: an attempt that throws is `invalid` (our fault: the channels classify every
 * network error themselves), ends the delivery and leaves the circuit breaker as it was.
 */
export async function deliver(
  attempt: (signal: AbortSignal) => Promise<AttemptResult>,
  opts: {
    policy: DeliveryPolicy;
    breaker: CircuitBreaker;
    deadlineAt: number;
    clock?: Clock;
    random?: () => number;
  },
): Promise<DeliveryOutcome> {
  const { policy, breaker } = opts;
  const clock = opts.clock ?? systemClock;
  const random = opts.random ?? Math.random;
  let last: DeliveryOutcome = { ok: false, attempts: 0, reason: "deadline", detail: "no time" };
  for (let n = 1; n <= policy.maxAttempts; n++) {
    const remaining = opts.deadlineAt - clock.now();
    if (remaining <= 0) return { ...last, attempts: n - 1, reason: last.reason ?? "deadline" };
    if (!breaker.tryAcquire()) {
      return { ok: false, attempts: n - 1, reason: "circuit-open", detail: last.detail };
    }
    let r: AttemptResult;
    try {
      r = await attempt(AbortSignal.timeout(Math.min(policy.attemptTimeoutMs, remaining)));
    } catch (err) {
      breaker.release();
      const detail = `could not send: ${(err as Error)?.name ?? "error"}`;
      return { ok: false, attempts: n, reason: "invalid", detail };
    }
    if (r.ok) {
      breaker.success();
      return { ok: true, attempts: n, status: r.status };
    }
    if (r.kind === "rejected") breaker.success();
    else breaker.failure();
    last = { ok: false, attempts: n, status: r.status, reason: r.kind, detail: r.detail };
    if (r.kind === "rejected" || (r.kind === "ambiguous" && !policy.retryAmbiguous)) return last;
    if (n === policy.maxAttempts) return last;
    const backoff = backoffMs(
      n,
      { baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs },
      random(),
    );
    const wait = Math.max(backoff, r.retryAfterMs ?? 0);
    if (clock.now() + wait >= opts.deadlineAt) return last;
    await clock.sleep(wait);
  }
  return last;
}

/** The fetch function channels use (Node's global fetch by default). */
export type FetchFn = (input: string, init: RequestInit) => Promise<Response>;

const NOTHING_SENT = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** Classifies what fetch threw, by error name and code only: messages may carry the URL. */
export function classifyFetchError(err: unknown): AttemptResult {
  const e = err as { name?: string; cause?: { code?: string; name?: string } } | undefined;
  if (e?.name === "TimeoutError" || e?.name === "AbortError") {
    return { ok: false, kind: "ambiguous", detail: "timeout" };
  }
  const code = e?.cause?.code ?? e?.cause?.name ?? e?.name ?? "error";
  if (
    NOTHING_SENT.has(code) ||
    /^(ERR_TLS|CERT_|UNABLE_TO_VERIFY|DEPTH_ZERO|SELF_SIGNED)/.test(code)
  ) {
    return { ok: false, kind: "failed", detail: code };
  }
  return { ok: false, kind: "ambiguous", detail: code };
}

/**
 * POSTs a body and classifies the answer. Redirects are not followed (a 3xx is a refusal:
 * the URL is configured wrong). The response body is read (bounded) so the connection is
 * reused, and a short snippet goes into the detail for 4xx/5xx.
 */
export async function httpPost(
  fetchFn: FetchFn,
  url: string,
  body: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<AttemptResult> {
  let res: Response;
  let text: string;
  try {
    res = await fetchFn(url, { method: "POST", body, headers, signal, redirect: "manual" });
    text = await res.text();
  } catch (err) {
    return classifyFetchError(err);
  }
  if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
  const snippet = text.replace(/\s+/g, " ").trim().slice(0, 200);
  const detail = `HTTP ${res.status}${snippet ? `: ${snippet}` : ""}`;
  if (res.status >= 500 || res.status === 408 || res.status === 429) {
    return {
      ok: false,
      kind: "failed",
      status: res.status,
      detail,
      retryAfterMs: parseRetryAfter(res.headers.get("retry-after"), Date.now()),
    };
  }
  return { ok: false, kind: "rejected", status: res.status, detail };
}

/** Replaces every occurrence of each secret (and its URL-encoded form) by `[REDACTED]`. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (!s || s.length < 4) continue;
    for (const form of new Set([s, encodeURIComponent(s)]))
      out = out.split(form).join("[REDACTED]");
  }
  return out;
}
