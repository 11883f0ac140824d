/**
 * The one exponential backoff with jitter. Pure: the random draw is an argument.
 */
export interface BackoffPolicy {
  /** Delay ceiling of the first retry. */
  baseMs: number;
  /** Upper bound of every delay. */
  maxMs: number;
}

/**
 * The delay before retry number `attempt` (1-based): "equal jitter", between half and all of
 * `baseMs · 2^(attempt-1)`, capped at `maxMs`. Half the ceiling is always waited (no hammering
 * after an outage); the other half spreads retries of many clients apart.
 *
 * @example
 * backoffMs(1, { baseMs: 200, maxMs: 30_000 }, 0)   // 100
 * backoffMs(3, { baseMs: 200, maxMs: 30_000 }, 0.5) // 600
 */
export function backoffMs(attempt: number, policy: BackoffPolicy, random: number): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + random * (ceiling / 2);
}
