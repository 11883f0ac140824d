/**
 * {@link PointWriter} for the InfluxDB v2 write API (`/api/v2/write`: InfluxDB 2.x, 3.x, Cloud,
 * Timestream for InfluxDB; VictoriaMetrics locally) through `@influxdata/influxdb-client`.
 *
 * The client's `WriteApi` is a buffer that flushes on its own and retries in the background,
 * and `flush()`/`close()` can return before those batches were accepted (measured: `close()`
 * returned with 0 of 200,000 points written); it also counts every line's bytes and needs a
 * fresh instance per request. The engine needs none of that: it has its lines, retries within
 * its own time budget and must know each request's answer. So each request is one POST through
 * the client's transport (one client per writer: its connection settings, token, and gzip
 * above 1 KB, which saves NAT bytes on AWS), aborted with the request's own signal, and its
 * result is the server's answer to exactly these lines.
 */

import { HttpError, InfluxDB } from "@influxdata/influxdb-client";
import type { PointWriter, SendResult, WriterOptions } from "./writer.ts";
import { createLineWriter, databaseUrl, httpFailure, networkMessage } from "./writer.ts";

/** The client's own threshold for its write API: bodies above 1 KB are gzipped. */
const GZIP_THRESHOLD_BYTES = 1000;

/**
 * Creates a writer for the InfluxDB v2 write API (precision ns).
 *
 * @example
 * const writer = createV2Writer({ url, token, org: "waf-org", bucket: "waf-realtime" });
 * const outcomes = await writer.write([{ key: entryId, line: point.toLineProtocol() ?? "" }]);
 */
export function createV2Writer(opts: WriterOptions): PointWriter {
  databaseUrl(opts.url, opts.bucket); // throws for a URL that does not parse or is not http(s)
  const { org, bucket, token } = opts;
  const influx = new InfluxDB({ url: opts.url, token, timeout: opts.timeoutMs ?? 10_000 });
  const path = `/api/v2/write?${new URLSearchParams({ org, bucket, precision: "ns" })}`;
  const headers = { "content-type": "text/plain; charset=utf-8" };

  // The request's own signal (createLineWriter gives each request one).
  const send = async (lines: string[], signal: AbortSignal): Promise<SendResult> => {
    let status = 0;
    try {
      await influx.transport.request(
        path,
        lines.join("\n"),
        { method: "POST", headers, gzipThreshold: GZIP_THRESHOLD_BYTES, signal },
        (_headers, statusCode) => {
          status = statusCode ?? 0;
        },
      );
      // 204 is the write API's only success; a 200 comes from something else (a proxy page).
      if (status !== 204) {
        return { kind: "network", message: `answered ${status}, not the write API's 204` };
      }
      return { kind: "accepted" };
    } catch (err) {
      return fromError(err);
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
