/**
 * {@link PointWriter} for the InfluxDB v2 write API (`/api/v2/write`: InfluxDB 2.x, 3.x, Cloud,
 * Timestream for InfluxDB; VictoriaMetrics locally) through `@influxdata/influxdb-client`.
 *
 * The client's `WriteApi` is a buffer that flushes on its own once `batchSize` or
 * `maxBatchBytes` is reached, and `flush()`/`close()` can return before those batches were
 * accepted (FIELD-NOTES: `close()` returned with 0 of 200,000 points written). So each request
 * gets a fresh `WriteApi` that cannot flush by itself (batch limits above the request, no
 * interval), no retries of its own (the engine retries, within its time budget), and its
 * result is the awaited `flush()` — confirmed once more by `writeSuccess` for exactly these
 * lines.
 */

import { HttpError, InfluxDB, type WriteApi } from "@influxdata/influxdb-client";
import { parseRetryAfter } from "../lib/retry-after.ts";
import {
  childSignal,
  createLineWriter,
  errorText,
  networkMessage,
  type PointWriter,
  type SendResult,
  WriterConfigError,
  type WriterOptions,
} from "./writer.ts";

/**
 * Creates a writer for the InfluxDB v2 write API (precision ns).
 *
 * @example
 * const writer = createV2Writer({ url, token, org: "waf-org", bucket: "waf-realtime" });
 * const outcomes = await writer.write([{ key: entryId, line: point.toLineProtocol() ?? "" }]);
 */
export function createV2Writer(opts: WriterOptions): PointWriter {
  const url = checkUrl(opts.url);
  if (!opts.bucket) throw new WriterConfigError("the v2 writer needs a bucket");
  const { org, bucket, token } = opts;
  const timeoutMs = opts.timeoutMs ?? 10_000;

  const send = async (lines: string[], signal: AbortSignal): Promise<SendResult> => {
    const request = childSignal(signal);
    // One client per request: the abort signal can only be given to the transport at
    // construction, and a client is a few object spreads, nothing next to the request.
    const influx = new InfluxDB({
      url,
      token,
      timeout: timeoutMs,
      transportOptions: { signal: request.signal },
    });
    let confirmed = 0;
    const writeApi: WriteApi = influx.getWriteApi(org, bucket, "ns", {
      batchSize: lines.length + 1,
      maxBatchBytes: Number.MAX_SAFE_INTEGER,
      flushInterval: 0,
      maxRetries: 0,
      writeSuccess: (written) => {
        confirmed += written.length;
      },
      // Returning a promise makes it the result of the flush: no retry buffer, no log line of
      // the client's own for every refused half of a bisection.
      writeFailed: (error) => Promise.reject(error),
    });
    try {
      writeApi.writeRecords(lines);
      await writeApi.flush();
      if (confirmed !== lines.length) {
        return {
          kind: "network",
          message: `the client confirmed ${confirmed} of ${lines.length} lines`,
        };
      }
      return { kind: "accepted" };
    } catch (err) {
      return fromError(err);
    } finally {
      writeApi.dispose();
      request.release();
    }
  };

  return createLineWriter(
    { api: "InfluxDB v2 API", notFound: `bucket "${bucket}" or org "${org}" not found` },
    send,
    opts,
  );
}

function fromError(err: unknown): SendResult {
  if (err instanceof HttpError) {
    const header = err.headers?.["retry-after"];
    const retryAfterMs = parseRetryAfter(Array.isArray(header) ? header[0] : header, Date.now());
    const text = err.body ? errorText(err.body) : err.message;
    return {
      kind: "http",
      status: err.statusCode,
      message: text,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    };
  }
  return { kind: "network", message: networkMessage(err) };
}

function checkUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new WriterConfigError("the InfluxDB URL does not parse", { cause });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new WriterConfigError(`the InfluxDB URL must be http(s), not ${url.protocol}`);
  }
  return raw;
}
