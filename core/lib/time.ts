/**
 * Time for adapters and loops: a clock that tests replace, and the one `sleep`. The pure core
 * never imports this file (it takes `now` as an argument).
 */

export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Waits `ms` (see {@link sleep}); fake clocks advance instead. */
  sleep(ms: number, signal?: AbortSignal): Promise<boolean>;
}

/**
 * Resolves `true` after `ms`, or `false` as soon as `signal` aborts (early, or already). The
 * timer never outlives an abort, and no listener is left on a long-lived signal.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(
      () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(true);
      },
      Math.max(0, ms),
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now(), sleep };
