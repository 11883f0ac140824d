/**
 * The local Invoke API against real Redis and the real `@aws-sdk/client-lambda` (reference §8).
 * Each test uses its own queue prefix; crash tests kill a runtime running in a child process.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import {
  InvalidRequestContentException,
  type InvocationType,
  InvokeCommand,
  type InvokeCommandOutput,
  type LambdaClient,
  RequestTooLargeException,
  ResourceNotFoundException,
  ServiceException,
} from "@aws-sdk/client-lambda";
import type { Context } from "aws-lambda";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../core/lib/logger.ts";
import { createLambdaClient } from "../functions/shared/lambda.ts";
import { CONSUMER_GROUP, type FailedInvocation, queueKeys } from "./event-queue.ts";
import {
  type LambdaServerOptions,
  type LocalHandler,
  parseFunctionName,
  startLambdaServer,
  TOKEN_HEADER,
} from "./lambda-server.ts";
import { type RunningService, startRedis } from "./services.ts";

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

async function server(opts: Partial<LambdaServerOptions> & Pick<LambdaServerOptions, "functions">) {
  const started = await startLambdaServer({
    redis,
    queueKeyPrefix: `test:${randomUUID()}`,
    retryDelaysMs: [20, 40],
    logger: silentLogger,
    ...opts,
  });
  cleanups.push(() => started.close());
  return started;
}

function client(target: { url: string; token: string }): LambdaClient {
  const lambda = createLambdaClient(
    {
      endpoint: target.url,
      region: "us-east-1",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
      maxAttempts: 1,
    },
    target.token,
  );
  cleanups.push(() => lambda.destroy());
  return lambda;
}

function invoke(
  lambda: LambdaClient,
  functionName: string,
  payload: unknown,
  type: InvocationType = "RequestResponse",
): Promise<InvokeCommandOutput> {
  const body =
    payload instanceof Uint8Array ? payload : new TextEncoder().encode(JSON.stringify(payload));
  return lambda.send(
    new InvokeCommand({ FunctionName: functionName, InvocationType: type, Payload: body }),
  );
}

function decode(output: InvokeCommandOutput): unknown {
  return JSON.parse(new TextDecoder().decode(output.Payload));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to throw");
}

async function waitFor(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until the queue of `fn` holds nothing: no entry, nothing pending. */
async function queueDrained(prefix: string, fn: string): Promise<boolean> {
  const { stream } = queueKeys(prefix, fn);
  const [length, pending] = await Promise.all([
    redis.xlen(stream),
    redis.xpending(stream, CONSUMER_GROUP) as Promise<[number, ...unknown[]]>,
  ]);
  return length === 0 && pending[0] === 0;
}

async function failedRecords(prefix: string, fn: string): Promise<FailedInvocation[]> {
  const raw = await redis.lrange(queueKeys(prefix, fn).failed, 0, -1);
  return raw.map((r) => JSON.parse(r) as FailedInvocation);
}

/** A handler that records its calls; `behaviour` decides each call's outcome. */
function recorder(
  behaviour: (call: number, event: unknown) => Promise<unknown> | unknown = () => "ok",
) {
  const calls: Array<{ event: unknown; context: Context }> = [];
  const handler: LocalHandler = async (event, context) => {
    calls.push({ event, context });
    return behaviour(calls.length, event);
  };
  return { calls, handler };
}

describe("RequestResponse", () => {
  it("returns the handler's result with a realistic context", async () => {
    const echo = recorder((_, event) => ({ echoed: event }));
    const srv = await server({ functions: { score: echo.handler }, timeoutMs: 30_000 });
    const out = await invoke(client(srv), "score", { records: [{ id: "1-0" }] });

    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBeUndefined();
    expect(out.ExecutedVersion).toBe("$LATEST");
    expect(decode(out)).toEqual({ echoed: { records: [{ id: "1-0" }] } });
    const [call] = echo.calls;
    expect(call?.event).toEqual({ records: [{ id: "1-0" }] });
    const ctx = call?.context as Context;
    expect(ctx.functionName).toBe("score");
    expect(ctx.functionVersion).toBe("$LATEST");
    expect(ctx.awsRequestId).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    expect(out.$metadata.requestId).toBe(ctx.awsRequestId);
    expect(ctx.invokedFunctionArn).toBe("arn:aws:lambda:us-east-1:000000000000:function:score");
    expect(ctx.memoryLimitInMB).toBe("1024");
    expect(ctx.logGroupName).toBe("/aws/lambda/score");
    expect(ctx.logStreamName).toMatch(/^\d{4}\/\d{2}\/\d{2}\/\[\$LATEST\][0-9a-f]{32}$/);
    const remaining = ctx.getRemainingTimeInMillis();
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(30_000);
  });

  it("answers null when the handler returns nothing, and {} reaches a handler invoked without payload", async () => {
    const nothing = recorder(() => undefined);
    const lambda = client(await server({ functions: { alert: nothing.handler } }));
    const out = await lambda.send(new InvokeCommand({ FunctionName: "alert" }));
    expect(new TextDecoder().decode(out.Payload)).toBe("null");
    expect(nothing.calls[0]?.event).toEqual({});
  });

  it("reports a thrown error as FunctionError Unhandled with errorType, errorMessage and trace", async () => {
    class InfluxWriteError extends Error {
      override name = "InfluxWriteError";
    }
    const failing = recorder(() => {
      throw new InfluxWriteError("influx said 503");
    });
    const srv = await server({ functions: { score: failing.handler } });
    const out = await invoke(client(srv), "score", { records: [] });

    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBe("Unhandled");
    const body = decode(out) as { errorType: string; errorMessage: string; trace: string[] };
    expect(body.errorType).toBe("InfluxWriteError");
    expect(body.errorMessage).toBe("influx said 503");
    expect(body.trace[0]).toBe("InfluxWriteError: influx said 503");
    expect(srv.stats().functionErrors).toBe(1);
  });

  it("reports a handler that outlives the function timeout as Sandbox.Timedout", async () => {
    const stuck = recorder(() => new Promise(() => undefined));
    const out = await invoke(
      client(await server({ functions: { score: stuck.handler }, timeoutMs: 100 })),
      "score",
      {},
    );
    expect(out.FunctionError).toBe("Unhandled");
    expect(decode(out)).toMatchObject({
      errorType: "Sandbox.Timedout",
      errorMessage: expect.stringContaining("Task timed out after 0.10 seconds"),
    });
  });

  it("routes ARNs, partial ARNs and qualified names to the function", async () => {
    const fn = recorder();
    const lambda = client(await server({ functions: { score: fn.handler } }));
    for (const name of [
      "arn:aws:lambda:us-east-1:000000000000:function:score",
      "000000000000:function:score:live",
      "score:$LATEST",
    ]) {
      expect((await invoke(lambda, name, {})).StatusCode).toBe(200);
    }
    expect(fn.calls.map((c) => c.context.invokedFunctionArn)).toEqual([
      "arn:aws:lambda:us-east-1:000000000000:function:score",
      "arn:aws:lambda:us-east-1:000000000000:function:score:live",
      "arn:aws:lambda:us-east-1:000000000000:function:score:$LATEST",
    ]);
    expect(
      parseFunctionName("arn%3Aaws%3Alambda%3Aeu-west-1%3A1%3Afunction%3Aalert%3Aprod"),
    ).toEqual({
      name: "alert",
      qualifier: "prod",
    });
    expect(parseFunctionName("%E0%A4%A")).toBeUndefined();
  });

  it("is selected by AWS_ENDPOINT_URL_LAMBDA without an explicit endpoint", async () => {
    const srv = await server({ functions: { score: recorder(() => 42).handler } });
    const previous = process.env.AWS_ENDPOINT_URL_LAMBDA;
    process.env.AWS_ENDPOINT_URL_LAMBDA = srv.url;
    try {
      const lambda = createLambdaClient(
        {
          region: "us-east-1",
          credentials: { accessKeyId: "local", secretAccessKey: "local" },
          maxAttempts: 1,
        },
        srv.token,
      );
      cleanups.push(() => lambda.destroy());
      expect(decode(await invoke(lambda, "score", {}))).toBe(42);
    } finally {
      if (previous === undefined) delete process.env.AWS_ENDPOINT_URL_LAMBDA;
      else process.env.AWS_ENDPOINT_URL_LAMBDA = previous;
    }
  });

  it("answers DryRun with 204 without running the handler", async () => {
    const fn = recorder();
    const srv = await server({ functions: { score: fn.handler } });
    const out = await invoke(client(srv), "score", {}, "DryRun");
    expect(out.StatusCode).toBe(204);
    expect(fn.calls).toHaveLength(0);
    expect(srv.stats().invocations.DryRun).toBe(1);
  });

  it("lets a running invocation finish when the server closes", async () => {
    let release: () => void = () => undefined;
    const slow = recorder(() => new Promise((resolve) => (release = () => resolve("finished"))));
    const srv = await server({ functions: { score: slow.handler } });
    const pending = invoke(client(srv), "score", {});
    await waitFor(() => slow.calls.length === 1, "the handler to start");
    const closing = srv.close();
    let closed = false;
    void closing.then(() => {
      closed = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false);
    release();
    const out = await pending;
    await closing;
    expect(decode(out)).toBe("finished");
    // The caller's connection is the caller's to close.
    expect(await redis.ping()).toBe("PONG");
  });
});

describe("row 11: who may invoke", () => {
  /** A raw POST, with exactly the headers given (a browser page's request, a rebound name…). */
  function post(url: string, headers: Record<string, string>): Promise<number> {
    const u = new URL("/2015-03-31/functions/score/invocations", url);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: "POST",
          headers,
          setHost: false,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.once("error", reject);
      req.end("{}");
    });
  }

  it("refuses a browser page (Origin), a non-loopback Host and a missing or wrong token; serves its own callers", async () => {
    const calls = recorder(() => 1);
    const srv = await server({ functions: { score: calls.handler } });
    const host = new URL(srv.url).host;
    const token = { [TOKEN_HEADER]: srv.token, "content-type": "application/json" };
    // What a page on any site could send with fetch(…, { mode: "no-cors" }): a text/plain POST.
    expect(await post(srv.url, { ...token, host, origin: "https://evil.example" })).toBe(403);
    expect(await post(srv.url, { ...token, host: "attacker.example:80" })).toBe(403);
    expect(await post(srv.url, { host, "content-type": "text/plain" })).toBe(403);
    expect(await post(srv.url, { host, [TOKEN_HEADER]: "x".repeat(srv.token.length) })).toBe(403);
    expect(calls.calls).toHaveLength(0);
    expect(await post(srv.url, { ...token, host })).toBe(200);
    expect(await post(srv.url, { ...token, host: `localhost:${new URL(srv.url).port}` })).toBe(200);
    expect(calls.calls).toHaveLength(2);
  });
});

describe("service errors become the SDK's typed exceptions", () => {
  it("throws ResourceNotFoundException (404) for an unknown function", async () => {
    const srv = await server({ functions: { score: recorder().handler } });
    const err = await rejection(invoke(client(srv), "no-such-function", {}));
    expect(err).toBeInstanceOf(ResourceNotFoundException);
    expect(err).toMatchObject({
      name: "ResourceNotFoundException",
      $fault: "client",
      $metadata: { httpStatusCode: 404 },
      message:
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:no-such-function",
    });
    expect(srv.stats().rejected).toBe(1);
  });

  it("throws InvalidRequestContentException (400) for a payload that is not JSON, for both types", async () => {
    const fn = recorder();
    const srv = await server({ functions: { alert: fn.handler } });
    const lambda = client(srv);
    for (const type of ["RequestResponse", "Event"] as const) {
      const err = await rejection(
        invoke(lambda, "alert", new TextEncoder().encode("{not json"), type),
      );
      expect(err).toBeInstanceOf(InvalidRequestContentException);
      expect(err).toMatchObject({
        $metadata: { httpStatusCode: 400 },
        message: expect.stringContaining("Could not parse request body into json"),
      });
    }
    expect(fn.calls).toHaveLength(0);
    expect(srv.stats().queueDepth).toBe(0);
  });

  it("throws RequestTooLargeException (413) above 6 MB synchronous and 256 KB Event payloads", async () => {
    const fn = recorder();
    const srv = await server({ functions: { alert: fn.handler } });
    const lambda = client(srv);
    const event = { blob: "x".repeat(256 * 1024) };
    const eventErr = await rejection(invoke(lambda, "alert", event, "Event"));
    expect(eventErr).toBeInstanceOf(RequestTooLargeException);
    expect(eventErr).toMatchObject({ $metadata: { httpStatusCode: 413 } });
    // The same payload is fine synchronously; 6 MB is not.
    expect((await invoke(lambda, "alert", event)).StatusCode).toBe(200);
    const syncErr = await rejection(invoke(lambda, "alert", { blob: "x".repeat(6 * 1024 * 1024) }));
    expect(syncErr).toBeInstanceOf(RequestTooLargeException);
    expect(fn.calls).toHaveLength(1);
  });
});

describe("Event invocations", () => {
  it("answers 202 once the payload is queued and runs the handler later", async () => {
    const prefix = `test:${randomUUID()}`;
    const fn = recorder();
    const srv = await server({ functions: { alert: fn.handler }, queueKeyPrefix: prefix });
    const out = await invoke(client(srv), "alert", { tx_id: "tx-1", severity: 95 }, "Event");

    expect(out.StatusCode).toBe(202);
    expect(out.Payload?.length ?? 0).toBe(0);
    await waitFor(() => fn.calls.length === 1, "the handler to run");
    expect(fn.calls[0]?.event).toEqual({ tx_id: "tx-1", severity: 95 });
    // Like AWS, the context carries the request ID the 202 answered with.
    expect(fn.calls[0]?.context.awsRequestId).toBe(out.$metadata.requestId);
    await waitFor(() => queueDrained(prefix, "alert"), "the queue to drain");
    expect(srv.stats()).toMatchObject({
      invocations: { Event: 1 },
      async: { enqueued: 1, succeeded: 1, retries: 0, failed: 0 },
      queueDepth: 0,
    });
  });

  it("retries a handler that fails twice and succeeds on the third attempt", async () => {
    const prefix = `test:${randomUUID()}`;
    const flaky = recorder((call) => {
      if (call < 3) throw new Error(`transient ${call}`);
      return "ok";
    });
    const failures: unknown[] = [];
    const srv = await server({
      functions: { alert: flaky.handler },
      queueKeyPrefix: prefix,
      onAsyncFailure: (...args) => {
        failures.push(args);
      },
    });
    await invoke(client(srv), "alert", { tx_id: "tx-2" }, "Event");

    await waitFor(() => srv.stats().async.succeeded === 1, "the third attempt to succeed");
    expect(flaky.calls).toHaveLength(3);
    expect(flaky.calls.every((c) => (c.event as { tx_id: string }).tx_id === "tx-2")).toBe(true);
    expect(new Set(flaky.calls.map((c) => c.context.awsRequestId)).size).toBe(1);
    expect(srv.stats().async).toMatchObject({ retries: 2, failed: 0 });
    expect(failures).toHaveLength(0);
    expect(await failedRecords(prefix, "alert")).toEqual([]);
    expect(await queueDrained(prefix, "alert")).toBe(true);
    expect(await redis.exists(queueKeys(prefix, "alert").attempts)).toBe(0);
  });

  it("gives up after exactly three attempts: onAsyncFailure and the failed list", async () => {
    const prefix = `test:${randomUUID()}`;
    const broken = recorder((call) => {
      throw new TypeError(`cannot read alert (attempt ${call})`);
    });
    const failures: Array<[string, unknown, unknown]> = [];
    const srv = await server({
      functions: { alert: broken.handler },
      queueKeyPrefix: prefix,
      onAsyncFailure: (fn, payload, error) => {
        failures.push([fn, payload, error]);
      },
    });
    const out = await invoke(client(srv), "alert", { tx_id: "tx-3" }, "Event");

    await waitFor(() => failures.length === 1, "onAsyncFailure");
    await waitFor(() => queueDrained(prefix, "alert"), "the entry to leave the queue");
    expect(broken.calls).toHaveLength(3);
    const [fn, payload, error] = failures[0] ?? [];
    expect(fn).toBe("alert");
    expect(payload).toEqual({ tx_id: "tx-3" });
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe("cannot read alert (attempt 3)");
    expect(await failedRecords(prefix, "alert")).toEqual([
      expect.objectContaining({
        functionName: "alert",
        requestId: out.$metadata.requestId,
        payload: { tx_id: "tx-3" },
        attempts: 3,
        errorType: "TypeError",
        error: "TypeError: cannot read alert (attempt 3)",
      }),
    ]);
    expect(srv.stats().async).toMatchObject({ started: 3, retries: 2, failed: 1, succeeded: 0 });
    // Nothing else runs later.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(broken.calls).toHaveLength(3);
  });

  it("runs at most asyncConcurrency invocations of a function at once", async () => {
    const prefix = `test:${randomUUID()}`;
    let running = 0;
    let peak = 0;
    const releases: Array<() => void> = [];
    const gated = recorder(async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((resolve) => releases.push(resolve));
      running--;
    });
    const srv = await server({
      functions: { alert: gated.handler },
      queueKeyPrefix: prefix,
      asyncConcurrency: 2,
    });
    const lambda = client(srv);
    for (let i = 0; i < 5; i++) await invoke(lambda, "alert", { i }, "Event");

    await waitFor(() => running === 2, "two invocations to run");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(gated.calls).toHaveLength(2);
    for (let released = 0; released < 5; released++) {
      await waitFor(() => releases.length > 0, "a running invocation");
      expect(running).toBeLessThanOrEqual(2);
      releases.shift()?.();
    }
    await waitFor(() => srv.stats().async.succeeded === 5, "every invocation to finish");
    expect(peak).toBe(2);
    expect(gated.calls.map((c) => (c.event as { i: number }).i).sort()).toEqual([0, 1, 2, 3, 4]);
  });
});

describe("durability of Event invocations", () => {
  it("runs, exactly once, an invocation queued by a runtime that stopped before running it", async () => {
    const prefix = `test:${randomUUID()}`;
    const first = recorder();
    const before = await server({
      functions: { alert: first.handler },
      queueKeyPrefix: prefix,
      startWorkers: false,
    });
    const out = await invoke(client(before), "alert", { tx_id: "tx-4" }, "Event");
    expect(out.StatusCode).toBe(202);
    await before.close();
    expect(await redis.xlen(queueKeys(prefix, "alert").stream)).toBe(1);

    const second = recorder();
    const after = await server({ functions: { alert: second.handler }, queueKeyPrefix: prefix });
    await waitFor(() => after.stats().async.succeeded === 1, "the queued invocation to run");
    await waitFor(() => queueDrained(prefix, "alert"), "the queue to drain");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(first.calls).toHaveLength(0);
    expect(second.calls.map((c) => c.event)).toEqual([{ tx_id: "tx-4" }]);
    expect(second.calls[0]?.context.awsRequestId).toBe(out.$metadata.requestId);
  });

  it("re-runs, exactly once, an invocation whose runtime was SIGKILLed while running it", async () => {
    const prefix = `test:${randomUUID()}`;
    const child = await crashingRuntime(prefix);
    const out = await invoke(client(child), "alert", { tx_id: "tx-5" }, "Event");
    expect(out.StatusCode).toBe(202);
    await child.handlerStarted;
    await child.kill();
    const keys = queueKeys(prefix, "alert");
    expect(
      await redis.hget(keys.attempts, String((await redis.xrange(keys.stream, "-", "+"))[0]?.[0])),
    ).toBe("1");

    const fn = recorder();
    const after = await server({ functions: { alert: fn.handler }, queueKeyPrefix: prefix });
    await waitFor(() => after.stats().async.succeeded === 1, "the recovered invocation to run");
    await waitFor(() => queueDrained(prefix, "alert"), "the queue to drain");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(fn.calls.map((c) => c.event)).toEqual([{ tx_id: "tx-5" }]);
    expect(after.stats().async.recovered).toBe(1);
    expect(await redis.exists(keys.attempts)).toBe(0);
  });

  it("keeps counting attempts across a crash: two more failures exhaust the retries", async () => {
    const prefix = `test:${randomUUID()}`;
    const child = await crashingRuntime(prefix);
    await invoke(client(child), "alert", { tx_id: "tx-6" }, "Event");
    await child.handlerStarted;
    await child.kill();

    const broken = recorder(() => {
      throw new Error("still broken");
    });
    const failures: unknown[] = [];
    await server({
      functions: { alert: broken.handler },
      queueKeyPrefix: prefix,
      onAsyncFailure: (_fn, payload) => {
        failures.push(payload);
      },
    });
    await waitFor(() => failures.length === 1, "onAsyncFailure");
    await waitFor(() => queueDrained(prefix, "alert"), "the entry to leave the queue");
    expect(broken.calls).toHaveLength(2);
    expect(failures).toEqual([{ tx_id: "tx-6" }]);
    expect(await failedRecords(prefix, "alert")).toEqual([
      expect.objectContaining({
        payload: { tx_id: "tx-6" },
        attempts: 3,
        error: "Error: still broken",
      }),
    ]);
  });
});

describe("Redis outages", () => {
  it("refuses an Event with ServiceException while Redis is down, and works again once it is back", async () => {
    const own = await startRedis();
    cleanups.push(() => own.stop());
    const conn = new Redis(own.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    conn.on("error", () => undefined);
    cleanups.push(() => conn.disconnect());
    const fn = recorder();
    const srv = await server({ functions: { alert: fn.handler }, redis: conn });
    const lambda = client(srv);

    await own.down("SIGKILL");
    const err = await rejection(invoke(lambda, "alert", { tx_id: "during" }, "Event"));
    expect(err).toBeInstanceOf(ServiceException);
    expect(err).toMatchObject({ $fault: "server", $metadata: { httpStatusCode: 500 } });

    // Redis comes back empty (no persistence): the worker recreates its stream and group.
    await own.up();
    await waitFor(async () => (await conn.ping().catch(() => "")) === "PONG", "the reconnection");
    expect((await invoke(lambda, "alert", { tx_id: "after" }, "Event")).StatusCode).toBe(202);
    await waitFor(() => fn.calls.length === 1, "the handler to run", 30_000);
    expect(fn.calls[0]?.event).toEqual({ tx_id: "after" });
  });
});

/**
 * A runtime in a child process whose `alert` handler never returns, so it can be SIGKILLed
 * while holding an invocation: a real crash, with no close() and no finally blocks.
 */
const CRASHING_TOKEN = "crashing-runtime-token";

async function crashingRuntime(prefix: string) {
  const serverModule = fileURLToPath(new URL("./lambda-server.ts", import.meta.url));
  const script = `
    const { Redis } = await import("ioredis");
    const { startLambdaServer } = await import(${JSON.stringify(serverModule)});
    const quiet = { info() {}, warn() {}, error() {} };
    const server = await startLambdaServer({
      redis: new Redis(${JSON.stringify(redisService.url)}),
      queueKeyPrefix: ${JSON.stringify(prefix)},
      token: ${JSON.stringify(CRASHING_TOKEN)},
      logger: quiet,
      functions: {
        alert: async () => {
          process.stdout.write("handler-started\\n");
          await new Promise(() => {});
        },
      },
    });
    process.stdout.write("listening " + server.url + "\\n");
  `;
  const proc: ChildProcess = spawn(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script],
    {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    await exited;
  });
  let output = "";
  const lines = (pattern: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const found = output.match(pattern);
        if (found) resolve(found);
      };
      proc.stdout?.on("data", check);
      void exited.then(() => reject(new Error(`runtime exited: ${output}`)));
      check();
    });
  proc.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  proc.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [, url] = await lines(/listening (\S+)/);
  return {
    url: url as string,
    token: CRASHING_TOKEN,
    handlerStarted: lines(/handler-started/),
    kill: async () => {
      proc.kill("SIGKILL");
      await exited;
    },
  };
}
