/**
 * Test helpers for Lambda handlers: a realistic fake `Context`, and the Powertools log lines a
 * handler printed (with POWERTOOLS_DEV set, Powertools prints through the global console).
 */
import { randomUUID } from "node:crypto";
import type { Context } from "aws-lambda";
import { vi } from "vitest";

export type LogLine = Record<string, unknown> & { level: string; message: string };

/** A Lambda context for `functionName`, as the runtime would pass it. */
export function fakeContext(functionName: string, awsRequestId: string = randomUUID()): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: "1024",
    awsRequestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "2024/01/01/[$LATEST]abcdef",
    getRemainingTimeInMillis: () => 60_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/**
 * Starts capturing every JSON line Powertools prints, parsed, into the returned array. Call it
 * in `beforeEach`; undo it with `vi.restoreAllMocks()` and `vi.unstubAllEnvs()` in `afterEach`.
 */
export function captureLogs(): LogLine[] {
  const logs: LogLine[] = [];
  vi.stubEnv("POWERTOOLS_DEV", "true");
  const capture = (...args: unknown[]) => {
    logs.push(JSON.parse(String(args[0])) as LogLine);
  };
  for (const method of ["debug", "info", "warn", "error", "log"] as const) {
    vi.spyOn(console, method).mockImplementation(capture);
  }
  return logs;
}
