/**
 * {@link PointWriter} for the InfluxDB v2 write API (`/api/v2/write`: InfluxDB 2.x, 3.x, Cloud,
 * Timestream for InfluxDB; VictoriaMetrics locally) through `@influxdata/influxdb-client`.
 *
 * The client's `WriteApi` is a buffer that flushes on its own once `batchSize` or
 * `maxBatchBytes` is reached, and `flush()`/`close()` can return before those batches were
 * accepted (measured: `close()` returned with 0 of 200,000 points written). So each request
 * gets a fresh `WriteApi` that cannot flush by itself (batch limits above the request, no
 * interval), no retries of its own (the engine retries, within its time budget), and its
 * result is the awaited `flush()` — confirmed once more by `writeSuccess` for exactly these
 * lines.
 */

import { HttpError, InfluxDB, type WriteApi } from "@influxdata/influxdb-client";
import type { PointWriter, SendResult, WriterOptions } from "./writer.ts";
import {
  childSignal,
  createLineWriter,
  databaseUrl,
  httpFailure,
  networkMessage,
} from "./writer.ts";

/**
 * Creates a writer for the InfluxDB v2 write API (precision ns).
 *
 * @example
 * const writer = createV2Writer({ url, token, org: "waf-org", bucket: "waf-realtime" });
 * const outcomes = await writer.write([{ key: entryId, line: point.toLineProtocol() ?? "" }]);
 */
export function createV2Writer(opts: WriterOptions): PointWriter {
  databaseUrl(opts.url, opts.bucket); // throws for a URL that does not parse or is not http(s)
  const url = opts.url;
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
    const retryAfter = Array.isArray(header) ? header[0] : header;
    return httpFailure(err.statusCode, err.body ?? "", retryAfter, err.message);
  }
  return { kind: "network", message: networkMessage(err) };
}
