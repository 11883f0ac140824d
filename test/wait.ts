/**
 * Polling for outcomes in integration tests: tests wait for what must happen, with a generous
 * deadline, and never assert how fast it happened (speed is `npm run bench`'s business).
 */

/**
 * Calls `fn` until it returns something other than `undefined`, `null` or `false`, and returns
 * that. A throw counts as "not yet" (a server may be restarting); the last error is in the
 * timeout message.
 */
export async function until<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false)
        return v as Exclude<T, undefined | null | false>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
