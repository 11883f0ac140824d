/**
 * The local Lambda runtime: serves the AWS Lambda Invoke API so the stream reader calls the
 * scoring and alert functions through the real `@aws-sdk/client-lambda` (reference §8), selected with
 * `AWS_ENDPOINT_URL_LAMBDA` or `new LambdaClient({ endpoint })`.
 *
 * `POST /2015-03-31/functions/{name}/invocations`, `x-amz-invocation-type`:
 * - `RequestResponse` (default): 200 with the handler's JSON; a thrown error (or a timeout) is a
 *   200 with `X-Amz-Function-Error: Unhandled` and `{errorType, errorMessage, trace}`;
 * - `Event`: durably queued in Redis (./event-queue.ts), then 202; run later with two retries;
 * - `DryRun`: 204.
 * Service errors answer like AWS, with `x-amzn-ErrorType`, so the SDK throws its typed exceptions:
 * 400 `InvalidRequestContentException` (payload not JSON), 404 `ResourceNotFoundException`,
 * 413 `RequestTooLargeException` (6 MB synchronous, 256 KB `Event`).
 * The `authorization` header (SigV4) is not checked.
 *
 * @example
 * const server = await startLambdaServer({ functions: { score, alert }, redis });
 * process.env.AWS_ENDPOINT_URL_LAMBDA = server.url;
 */

import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { ClientContext, Context } from "aws-lambda";
import { consoleLogger, type Logger } from "../core/lib/logger.ts";
import type { RedisClient } from "../core/lib/redis.ts";
import { sleep } from "../core/lib/time.ts";
import { LOCAL_TOKEN_HEADER } from "../functions/shared/lambda.ts";
import { EventQueue, type EventQueueStats, errorText, type QueuedEvent } from "./event-queue.ts";

export type LocalHandler = (event: unknown, context: Context) => Promise<unknown>;

export type InvocationType = "RequestResponse" | "Event" | "DryRun";

/** Lambda's limit for a synchronous request and for its response. */
export const MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** Lambda's limit for an asynchronous (`Event`) request. */
export const MAX_EVENT_PAYLOAD_BYTES = 256 * 1024;

export interface LambdaServerOptions {
  /** Function name -> handler (the real middy handlers). */
  functions: Record<string, LocalHandler>;
  /** Connected client; holds the durable `Event` queues. Duplicated for blocking reads, never closed. */
  redis: RedisClient;
  /** 0 (default) = a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default `waf:local-lambda`. */
  queueKeyPrefix?: string;
  /** The per-run token callers must send in {@link TOKEN_HEADER}; default: a random one. */
  token?: string;
  /** Delays before the retries of a failed `Event` invocation; AWS retries twice. Default [1000, 2000]. */
  retryDelaysMs?: number[];
  /** Called after the last attempt of an `Event` invocation failed (it is also kept in `${prefix}:failed:${fn}`). */
  onAsyncFailure?: (fn: string, payload: unknown, error: unknown) => void | Promise<void>;
  logger?: Logger;
  /** Function timeout, as `getRemainingTimeInMillis` reports it and as enforced. Default 60 000. */
  timeoutMs?: number;
  /** `Event` invocations of one function running at once. Default 4. */
  asyncConcurrency?: number;
  /** Reported in the context. Default 1024. */
  memoryLimitInMB?: number;
  /** Used in ARNs. Defaults `us-east-1`, `000000000000`. */
  region?: string;
  accountId?: string;
  /**
   * Name of this runtime in the queues' consumer group. Keep it stable across restarts (what a
   * crashed runtime left pending is re-run by the next one with the same name) and unique among
   * runtimes sharing the same Redis and prefix at the same time. Default `local-runtime`.
   */
  consumerName?: string;
  /** false: accept and queue `Event` invocations but never run them (tests, tooling). Default true. */
  startWorkers?: boolean;
  /** How long `close()` waits for running invocations. Default 10 000. */
  drainTimeoutMs?: number;
  /** Queue entries another runtime has held this long are taken over. Default: well past every retry. */
  claimIdleMs?: number;
}

export interface LambdaServerStats {
  invocations: Record<InvocationType, number>;
  /** RequestResponse invocations answered with `X-Amz-Function-Error`. */
  functionErrors: number;
  /** Requests answered with an error status (4xx/5xx). */
  rejected: number;
  async: Omit<EventQueueStats, "depth" | "depthByFunction">;
  /** `Event` invocations queued or running, as of the last length Redis reported. */
  queueDepth: number;
  queueDepthByFunction: Record<string, number>;
}

export interface LambdaServer {
  /** `http://host:port`, for `AWS_ENDPOINT_URL_LAMBDA` or `LambdaClient({ endpoint })`. */
  url: string;
  port: number;
  /** What callers send in {@link TOKEN_HEADER} (see functions/shared/lambda.ts). */
  token: string;
  /** Stops accepting, lets running invocations finish (bounded), stops the workers. Idempotent. */
  close(): Promise<void>;
  stats(): LambdaServerStats;
}

const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/;

/** The header carrying the per-run token; callers learn it from `LOCAL_LAMBDA_TOKEN`. */
export const TOKEN_HEADER = LOCAL_TOKEN_HEADER;
const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;

/**
 * Who may invoke: not a browser page (it would send `Origin`: a page on any site could forge
 * alerts with a `text/plain` POST), not a DNS-rebound name (a `Host` that is not loopback), and
 * only a caller that holds this run's token (the local runtime hands it to the reader and the
 * scorer through their environment). Compared in constant time.
 */
function refusal(req: IncomingMessage, token: string): string | undefined {
  if (req.headers.origin !== undefined) return "requests from a browser page are refused";
  const host = req.headers.host ?? "";
  if (!LOOPBACK_HOST.test(host)) return "the Host header must name a loopback address";
  const sent = headerValue(req, TOKEN_HEADER) ?? "";
  const a = Buffer.from(sent);
  const b = Buffer.from(token);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return `missing or wrong ${TOKEN_HEADER}`;
  return undefined;
}

/**
 * Starts the local Invoke API. Resolves once it listens and the queues exist; its workers first
 * re-run whatever a previous runtime left pending in Redis.
 */
export async function startLambdaServer(opts: LambdaServerOptions): Promise<LambdaServer> {
  const logger = opts.logger ?? consoleLogger;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const region = opts.region ?? "us-east-1";
  const accountId = opts.accountId ?? "000000000000";
  const memoryLimitInMB = String(opts.memoryLimitInMB ?? 1024);
  const retryDelaysMs = opts.retryDelaysMs ?? [1_000, 2_000];
  const drainTimeoutMs = opts.drainTimeoutMs ?? 10_000;
  const functions = new Map(Object.entries(opts.functions));
  const token = opts.token ?? randomBytes(24).toString("hex");
  const logStreamName = `${new Date().toISOString().slice(0, 10).replaceAll("-", "/")}/[$LATEST]${randomBytes(16).toString("hex")}`;
  const arnOf = (name: string, qualifier?: string) =>
    `arn:aws:lambda:${region}:${accountId}:function:${name}${qualifier ? `:${qualifier}` : ""}`;

  const counts = {
    invocations: { RequestResponse: 0, Event: 0, DryRun: 0 } as Record<InvocationType, number>,
    functionErrors: 0,
    rejected: 0,
  };

  /** Runs one invocation under the function timeout; rejects with what the handler threw. */
  const invoke = async (call: {
    name: string;
    handler: LocalHandler;
    payload: unknown;
    requestId: string;
    qualifier?: string;
    clientContext?: ClientContext;
  }): Promise<unknown> => {
    const deadline = Date.now() + timeoutMs;
    const context: Context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName: call.name,
      functionVersion: "$LATEST",
      invokedFunctionArn: arnOf(call.name, call.qualifier),
      memoryLimitInMB,
      awsRequestId: call.requestId,
      logGroupName: `/aws/lambda/${call.name}`,
      logStreamName,
      clientContext: call.clientContext,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => undefined,
      fail: () => undefined,
      succeed: () => undefined,
    };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Unlike AWS, the handler cannot be frozen: it goes on in the background, its result ignored.
        reject(
          new NamedError(
            "Sandbox.Timedout",
            `RequestId: ${call.requestId} Error: Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`,
          ),
        );
      }, timeoutMs);
    });
    try {
      return await Promise.race([
        Promise.resolve().then(() => call.handler(call.payload, context)),
        timedOut,
      ]);
    } finally {
      clearTimeout(timer);
    }
  };

  const queue = new EventQueue({
    redis: opts.redis,
    functionNames: [...functions.keys()],
    keyPrefix: opts.queueKeyPrefix ?? "waf:local-lambda",
    retryDelaysMs,
    concurrency: opts.asyncConcurrency ?? 4,
    consumerName: opts.consumerName ?? "local-runtime",
    blockMs: 2_000,
    claimIdleMs:
      opts.claimIdleMs ??
      (retryDelaysMs.length + 1) * timeoutMs + retryDelaysMs.reduce((a, b) => a + b, 0) + 60_000,
    recoverIntervalMs: 30_000,
    logger,
    run: async (event: QueuedEvent) => {
      const handler = functions.get(event.functionName);
      if (!handler) throw new Error(`function ${event.functionName} is not served`);
      await invoke({
        name: event.functionName,
        handler,
        payload: event.payload,
        requestId: event.requestId,
      });
    },
    onFinalFailure: opts.onAsyncFailure
      ? (event, error) => opts.onAsyncFailure?.(event.functionName, event.payload, error)
      : undefined,
  });
  await queue.init();

  let closing = false;
  const inFlight = new Set<Promise<void>>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    // Requests that arrive once close() began are refused; earlier ones are served.
    const refused = closing;
    const reply = (status: number, headers: Record<string, string>, body?: string) => {
      if (status >= 400) counts.rejected++;
      res.writeHead(status, {
        "x-amzn-RequestId": requestId,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      });
      res.end(body);
    };
    const fail = (status: number, errorType: string, message: string) =>
      reply(
        status,
        { "x-amzn-ErrorType": errorType, ...(refused ? { connection: "close" } : {}) },
        JSON.stringify({ Type: status >= 500 ? "Service" : "User", message }),
      );

    const denied = refusal(req, token);
    if (denied) {
      await readBody(req, 0);
      fail(403, "AccessDeniedException", `The local Lambda runtime: ${denied}`);
      return;
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    const match = INVOKE_PATH.exec(url.pathname);
    if (req.method !== "POST" || !match?.[1]) {
      await readBody(req, 0);
      fail(404, "UnknownOperationException", `Unknown operation ${req.method} ${url.pathname}`);
      return;
    }
    const typeHeader = headerValue(req, "x-amz-invocation-type") ?? "RequestResponse";
    if (!isInvocationType(typeHeader)) {
      await readBody(req, 0);
      fail(
        400,
        "InvalidParameterValueException",
        `1 validation error detected: Value '${typeHeader}' at 'invocationType' failed to satisfy constraint: ` +
          "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
      );
      return;
    }
    const type = typeHeader;
    counts.invocations[type]++;
    const limit = type === "Event" ? MAX_EVENT_PAYLOAD_BYTES : MAX_SYNC_PAYLOAD_BYTES;
    const body = await readBody(req, limit);
    if (refused) {
      fail(503, "ServiceException", "The local Lambda runtime is shutting down");
      return;
    }
    if (body === undefined) {
      fail(
        413,
        "RequestTooLargeException",
        `Request must be smaller than ${limit} bytes for the InvokeFunction operation`,
      );
      return;
    }
    const target = parseFunctionName(match[1]);
    const qualifier = target?.qualifier ?? url.searchParams.get("Qualifier") ?? undefined;
    const handler = target ? functions.get(target.name) : undefined;
    if (!target || !handler) {
      const shown = target ? arnOf(target.name, qualifier) : (safeDecode(match[1]) ?? match[1]);
      fail(404, "ResourceNotFoundException", `Function not found: ${shown}`);
      return;
    }
    if (type === "DryRun") {
      reply(204, {});
      return;
    }
    let payload: unknown = {};
    const text = body.toString("utf8");
    if (text.trim() !== "") {
      try {
        payload = JSON.parse(text);
      } catch (err) {
        fail(
          400,
          "InvalidRequestContentException",
          `Could not parse request body into json: ${(err as Error).message}`,
        );
        return;
      }
    }

    if (type === "Event") {
      try {
        await queue.enqueue(target.name, text.trim() === "" ? "{}" : text, requestId);
      } catch (err) {
        logger.error(
          `local-lambda ${target.name}: could not queue an Event invocation: ${errorText(err)}`,
        );
        fail(500, "ServiceException", `Could not queue the invocation: ${errorText(err)}`);
        return;
      }
      reply(202, {});
      return;
    }

    let result: { ok: true; body: string } | { ok: false; error: unknown };
    try {
      const value = await invoke({
        name: target.name,
        handler,
        payload,
        requestId,
        qualifier,
        clientContext: parseClientContext(headerValue(req, "x-amz-client-context")),
      });
      result = { ok: true, body: serialise(value) };
    } catch (err) {
      result = { ok: false, error: err };
    }
    if (result.ok && Buffer.byteLength(result.body) > MAX_SYNC_PAYLOAD_BYTES) {
      result = {
        ok: false,
        error: new NamedError(
          "Function.ResponseSizeTooLarge",
          `Response payload size exceeded maximum allowed payload size (${MAX_SYNC_PAYLOAD_BYTES} bytes).`,
        ),
      };
    }
    const headers: Record<string, string> = { "x-amz-executed-version": "$LATEST" };
    if (result.ok) {
      reply(200, headers, result.body);
      return;
    }
    counts.functionErrors++;
    logger.warn(
      `local-lambda ${target.name}: invocation ${requestId} failed: ${errorText(result.error)}`,
    );
    reply(
      200,
      { ...headers, "X-Amz-Function-Error": "Unhandled" },
      JSON.stringify(errorPayload(result.error)),
    );
  };

  const server = createServer((req, res) => {
    const done = handle(req, res).catch((err: unknown) => {
      logger.error(`local-lambda: request failed: ${errorText(err)}`);
      if (!res.headersSent) {
        counts.rejected++;
        res.writeHead(500, {
          "x-amzn-ErrorType": "ServiceException",
          "content-type": "application/json",
        });
        res.end(
          JSON.stringify({
            Type: "Service",
            message: "Internal error in the local Lambda runtime",
          }),
        );
      } else {
        res.destroy();
      }
    });
    inFlight.add(done);
    void done.finally(() => inFlight.delete(done));
  });
  // The SDK keeps connections alive; a server closing idle ones sooner than its clients reuse them
  // races with the next request ("socket hang up"), which a reader with maxAttempts 1 sees as a failure.
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  if (opts.startWorkers !== false) queue.start();
  logger.info(`local-lambda: serving ${[...functions.keys()].join(", ")} at ${url}`);

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const deadline = Date.now() + drainTimeoutMs;
      const waited = new AbortController();
      const drained = await Promise.race([
        Promise.allSettled([...inFlight]).then(() => true),
        sleep(drainTimeoutMs, waited.signal).then(() => false),
      ]);
      waited.abort();
      if (!drained) logger.warn(`local-lambda: ${inFlight.size} request(s) still running at close`);
      server.closeAllConnections();
      await Promise.all([stopped, queue.close(Math.max(0, deadline - Date.now()))]);
    })();
    return closed;
  };

  const stats = (): LambdaServerStats => {
    const { depth, depthByFunction, ...async } = queue.stats();
    return {
      invocations: { ...counts.invocations },
      functionErrors: counts.functionErrors,
      rejected: counts.rejected,
      async,
      queueDepth: depth,
      queueDepthByFunction: depthByFunction,
    };
  };

  return { url, port: address.port, token, close, stats };
}

/**
 * The function name in an Invoke path segment: a name, `name:qualifier`, a partial ARN
 * (`123456789012:function:name[:qualifier]`) or a full ARN, URL-encoded or not.
 */
export function parseFunctionName(
  segment: string,
): { name: string; qualifier?: string } | undefined {
  const decoded = safeDecode(segment);
  if (decoded === undefined || decoded === "") return undefined;
  const parts = decoded.split(":");
  let rest: string[];
  if (parts[0] === "arn") {
    if (parts[5] !== "function") return undefined;
    rest = parts.slice(6);
  } else if (parts[1] === "function") {
    rest = parts.slice(2);
  } else {
    rest = parts;
  }
  const [name, qualifier, ...extra] = rest;
  if (!name || extra.length > 0 || qualifier === "") return undefined;
  return qualifier === undefined ? { name } : { name, qualifier };
}

class NamedError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** What the Node.js runtime answers for an unhandled error. */
function errorPayload(err: unknown): { errorType: string; errorMessage: string; trace: string[] } {
  if (err instanceof Error) {
    return {
      errorType: err.name || "Error",
      errorMessage: err.message,
      trace: err instanceof NamedError ? [] : (err.stack ?? "").split("\n"),
    };
  }
  return { errorType: typeof err, errorMessage: errorText(err), trace: [] };
}

function serialise(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "null";
  } catch (err) {
    throw new NamedError(
      "Runtime.MarshalError",
      `Unable to marshal response: ${(err as Error).message}`,
    );
  }
}

/** The body, or `undefined` once it exceeds `limit` bytes (the rest is read and dropped). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = Number(req.headers["content-length"] ?? 0) > limit;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooLarge = true;
      if (!tooLarge) chunks.push(chunk);
    });
    req.on("end", () => resolve(tooLarge ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function isInvocationType(value: string): value is InvocationType {
  return value === "RequestResponse" || value === "Event" || value === "DryRun";
}

function parseClientContext(header: string | undefined): ClientContext | undefined {
  if (!header) return undefined;
  try {
    return JSON.parse(Buffer.from(header, "base64").toString("utf8")) as ClientContext;
  } catch {
    return undefined;
  }
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
