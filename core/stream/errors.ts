/** Errors of an invocation of the scoring function, as the reader must tell them apart. */

/**
 * The function ran and failed as a whole (handler error, timeout, malformed response): the
 * batch may hold a poison record, so the reader bisects it and counts attempts.
 */
export class FunctionInvocationError extends Error {
  constructor(
    readonly errorType: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "FunctionInvocationError";
  }
}

/**
 * The invocation never reached the function or was refused (network, throttling, service
 * errors): no record is at fault, so nothing is counted against MAX_RETRIES; the reader
 * backs off and tries again.
 */
export class InvokeUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InvokeUnavailableError";
  }
}
