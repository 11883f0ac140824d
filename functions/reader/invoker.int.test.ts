/**
 * The reader's scorer invoker through the real `@aws-sdk/client-lambda` against the project's
 * REAL local Invoke API (backed by a real Redis), hosting small handlers: how every answer maps
 * to a response, a FunctionInvocationError (the batch's fault: bisect, count attempts) or an
 * InvokeUnavailableError (nobody's fault: back off).
 */

import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Logger } from "@aws-lambda-powertools/logger";
import type { LambdaClient } from "@aws-sdk/client-lambda";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../core/config.ts";
import { silentLogger } from "../../core/lib/logger.ts";
import { scorerSettingsFrom } from "../../core/scorer.ts";
import type { StreamRecord } from "../../core/stream/contract.ts";
import { FunctionInvocationError, InvokeUnavailableError } from "../../core/stream/errors.ts";
import {
  type LambdaServer,
  type LocalHandler,
  startLambdaServer,
} from "../../local/lambda-server.ts";
import { freePort, type RunningService, startRedis } from "../../local/services.ts";
import { envelope } from "../../test/fixtures/records.ts";
import { createHandler as createScoreHandler } from "../score.ts";
import { createLambdaClient } from "../shared/lambda.ts";
import { createLambdaInvoker } from "./invoker.ts";

let redisService: RunningService;
let redis: Redis;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  redisService = await startRedis();
  redis = new Redis(redisService.url);
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  redis?.disconnect();
  await redisService?.stop();
});

/** What the hosted handlers received, by function name. */
const received: Record<string, unknown[]> = {};

function record(handler: (event: unknown) => Promise<unknown>): LocalHandler {
  return async (event, context) => {
    const calls = received[context.functionName] ?? [];
    calls.push(event);
    received[context.functionName] = calls;
    return handler(event);
  };
}

const scoreResponse = {
  batchItemFailures: [{ itemIdentifier: "2-0" }],
  rejected: [{ itemIdentifier: "3-0", reason: "not JSON" }],
};

/** A real scoring handler, its point writer accepting everything and its alerts queued nowhere. */
const realScorer = createScoreHandler({
  settings: scorerSettingsFrom(loadConfig({})),
  writer: {
    write: async (lines) => lines.map((l) => ({ key: l.key, status: "accepted" as const })),
    close: async () => {},
  },
  alerts: { enqueue: async () => {} },
  logger: new Logger({ serviceName: "waf-scorer", logLevel: "SILENT" }),
});

const functions: Record<string, LocalHandler> = {
  answers: record(async () => scoreResponse),
  "answers-extra": record(async () => ({ ...scoreResponse, note: "ignored" })),
  "answers-empty": record(async () => ({})),
  throws: record(async () => {
    throw new TypeError("cannot read properties of undefined");
  }),
  "answers-string": record(async () => "hello"),
  "answers-nothing": record(async () => undefined),
  "answers-wrong-shape": record(async () => ({ batchItemFailures: "1-0" })),
  "answers-bigint": record(async () => ({ n: 1n })),
  scorer: (event, context) => realScorer(event, context),
};

async function lambdaServer(): Promise<LambdaServer> {
  const server = await startLambdaServer({
    functions,
    redis,
    queueKeyPrefix: `test:${randomUUID()}`,
    logger: silentLogger,
    startWorkers: false,
  });
  cleanups.push(() => server.close());
  return server;
}

function client(url: string, token: string): LambdaClient {
  const lambda = createLambdaClient(
    {
      endpoint: url,
      region: "us-east-1",
      credentials: { accessKeyId: "x", secretAccessKey: "x" },
      maxAttempts: 1,
    },
    token,
  );
  cleanups.push(() => lambda.destroy());
  return lambda;
}

const records: StreamRecord[] = [
  { id: "1-0", data: JSON.stringify(envelope({ id: "a", anomaly: 65 })), deliveryCount: 1 },
];
const bytes = (text: string) => new TextEncoder().encode(text);
const body = bytes(JSON.stringify({ records }));

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected the invocation to fail");
}

describe("createLambdaInvoker against the local Invoke API", () => {
  let server: LambdaServer;
  let lambda: LambdaClient;
  const invoker = (fn: string) => createLambdaInvoker(lambda, fn);

  beforeAll(async () => {
    server = await startLambdaServer({
      functions,
      redis,
      queueKeyPrefix: `test:${randomUUID()}`,
      logger: silentLogger,
      startWorkers: false,
    });
    lambda = createLambdaClient(
      {
        endpoint: server.url,
        region: "us-east-1",
        credentials: { accessKeyId: "x", secretAccessKey: "x" },
        maxAttempts: 1,
      },
      server.token,
    );
  });

  afterAll(async () => {
    lambda?.destroy();
    await server?.close();
  });

  it("hands the handler the request body and maps its answer", async () => {
    const res = await invoker("answers").invoke(body);
    expect(res).toEqual(scoreResponse);
    expect(received.answers?.at(-1)).toEqual({ records });
  });

  it("keeps only the contract's fields of an answer", async () => {
    expect(await invoker("answers-extra").invoke(body)).toStrictEqual(scoreResponse);
  });

  it("reads missing lists as empty", async () => {
    expect(await invoker("answers-empty").invoke(body)).toStrictEqual({
      batchItemFailures: [],
      rejected: [],
    });
  });

  it("maps the real scoring handler's answer", async () => {
    const bad = { id: "2-0", data: "not json", deliveryCount: 1 };
    const res = await invoker("scorer").invoke(
      bytes(JSON.stringify({ records: [...records, bad] })),
    );
    expect(res).toEqual({
      batchItemFailures: [],
      rejected: [{ itemIdentifier: "2-0", reason: expect.stringMatching(/^not JSON/) }],
    });
  });

  it("throws FunctionInvocationError with the error's type and message when the handler throws", async () => {
    const err = await rejection(invoker("throws").invoke(body));
    expect(err).toBeInstanceOf(FunctionInvocationError);
    expect((err as FunctionInvocationError).errorType).toBe("Unhandled");
    expect(err.message).toBe("TypeError: cannot read properties of undefined");
  });

  it("throws FunctionInvocationError when the real scoring handler refuses a malformed batch", async () => {
    const err = await rejection(invoker("scorer").invoke(bytes('{"records":"nope"}')));
    expect(err).toBeInstanceOf(FunctionInvocationError);
    expect(err.message).toMatch(/^InvalidBatchError: invalid scoring request/);
  });

  it.each([
    ["a string", "answers-string"],
    ["nothing (null)", "answers-nothing"],
    ["lists of the wrong type", "answers-wrong-shape"],
  ])("throws FunctionInvocationError when the function answers %s", async (_what, fn) => {
    const err = await rejection(invoker(fn).invoke(body));
    expect(err).toBeInstanceOf(FunctionInvocationError);
    expect((err as FunctionInvocationError).errorType).toBe("InvalidResponse");
    expect(err.message).toMatch(/unexpected shape/);
  });

  it("throws FunctionInvocationError when the answer cannot be serialised", async () => {
    const err = await rejection(invoker("answers-bigint").invoke(body));
    expect(err).toBeInstanceOf(FunctionInvocationError);
    expect(err.message).toMatch(/^Runtime\.MarshalError/);
  });

  it("throws FunctionInvocationError for a request body that is not JSON (the batch's fault)", async () => {
    const err = await rejection(invoker("answers").invoke(bytes("{not json")));
    expect(err).toBeInstanceOf(FunctionInvocationError);
    expect((err as FunctionInvocationError).errorType).toBe("InvalidRequestContentException");
  });

  it("throws FunctionInvocationError for a request over 6 MB (the batch's fault)", async () => {
    const big = JSON.stringify({
      records: [{ id: "1-0", data: "x".repeat(6 * 1024 * 1024), deliveryCount: 1 }],
    });
    const err = await rejection(invoker("answers").invoke(bytes(big)));
    expect(err).toBeInstanceOf(FunctionInvocationError);
    expect((err as FunctionInvocationError).errorType).toBe("RequestTooLargeException");
  });

  it("throws InvokeUnavailableError naming ResourceNotFoundException for an unknown function", async () => {
    // A configuration problem (SCORER_FUNCTION wrong), not a record's: no attempt is charged.
    const err = await rejection(invoker("no-such-function").invoke(body));
    expect(err).toBeInstanceOf(InvokeUnavailableError);
    expect(err.message).toMatch(/^ResourceNotFoundException: Function not found/);
    expect(err.message).toContain("no-such-function");
  });
});

describe("createLambdaInvoker without a working Invoke API", () => {
  it("throws InvokeUnavailableError when nothing listens", async () => {
    const port = await freePort();
    const err = await rejection(
      createLambdaInvoker(client(`http://127.0.0.1:${port}`, "t"), "answers").invoke(body),
    );
    expect(err).toBeInstanceOf(InvokeUnavailableError);
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it("throws InvokeUnavailableError once the local runtime has shut down", async () => {
    const server = await lambdaServer();
    const lambda = client(server.url, server.token);
    expect(await createLambdaInvoker(lambda, "answers").invoke(body)).toEqual(scoreResponse);
    await server.close();
    const err = await rejection(createLambdaInvoker(lambda, "answers").invoke(body));
    expect(err).toBeInstanceOf(InvokeUnavailableError);
  });

  it("throws FunctionInvocationError for a 200 answer that is not JSON", async () => {
    // The local runtime always answers JSON; a stand-in endpoint shows what a broken one does.
    const broken = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        res.writeHead(200, { "content-type": "text/html" });
        res.end("<html>gateway</html>");
      });
    });
    await new Promise<void>((resolve) => broken.listen(0, "127.0.0.1", resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          broken.closeAllConnections();
          broken.close(() => resolve());
        }),
    );
    const { port } = broken.address() as AddressInfo;
    const err = await rejection(
      createLambdaInvoker(client(`http://127.0.0.1:${port}`, "t"), "answers").invoke(body),
    );
    expect(err).toBeInstanceOf(FunctionInvocationError);
    expect((err as FunctionInvocationError).errorType).toBe("InvalidResponse");
    expect(err.message).toMatch(/non-JSON: <html>gateway<\/html>/);
  });
});
