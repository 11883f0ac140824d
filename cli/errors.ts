/** Errors the `waf` command maps to exit codes (cli/run.ts); no dependencies, so `--help` stays light. */

/** Redis could not be reached (or refused our credentials): exit 3. */
export class RedisUnreachableError extends Error {
  override readonly name = "RedisUnreachableError";
  constructor(
    readonly url: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach Redis at ${url}: ${reason}`, options);
  }
}
