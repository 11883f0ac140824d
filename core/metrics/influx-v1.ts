/**
 * {@link PointWriter} for the InfluxDB 1.x write API: `POST /write?db=<bucket>&precision=ns`.
 * The v2 client cannot talk to it (`/api/v2/write` is a 404 on 1.x), and the API is one POST,
 * so plain `fetch` does it.
 *
 * InfluxDB 1.x answers 204 on success, 400 with `{"error": …}` for a line it cannot parse or a
 * point outside retention (having written the other lines of the request: "partial write"),
 * 404 for a missing database, 401/403 for credentials.
 */
import type { PointWriter, SendResult, WriterOptions } from "./writer.ts";
import { createLineWriter, databaseUrl, httpFailure } from "./writer.ts";

/** Error bodies are short; a proxy's HTML page need not be read to the end. */
const MAX_ERROR_BODY_CHARS = 4_096;

/**
 * Creates a writer for the InfluxDB 1.x `/write` API; `bucket` is the database, `org` is
 * ignored. Credentials: `token` as `Authorization: Token <token>` (1.8+: `user:password`), or
 * `http://user:password@host:8086` sent as the `u`/`p` query parameters (any version).
 *
 * @example
 * const writer = createV1Writer({ url: "http://localhost:8086", org: "", bucket: "waf" });
 */
export function createV1Writer(opts: WriterOptions): PointWriter {
  const endpoint = writeUrl(opts.url, opts.bucket);
  const headers: Record<string, string> = { "content-type": "text/plain; charset=utf-8" };
  if (opts.token) headers.authorization = `Token ${opts.token}`;

  // The request's own signal; a thrown error is a network failure (createLineWriter says so).
  const send = async (lines: string[], signal: AbortSignal): Promise<SendResult> => {
    const res = await fetch(endpoint, {
      method: "POST",
      headers,
      body: lines.join("\n"),
      signal,
      // A redirect would re-send the body somewhere we were not told to write.
      redirect: "manual",
    });
    // Only 204 is InfluxDB 1.x's success; a 200 comes from something else (a proxy page).
    if (res.status === 204) {
      await res.body?.cancel();
      return { kind: "accepted" };
    }
    const body = (await res.text()).slice(0, MAX_ERROR_BODY_CHARS);
    return httpFailure(
      res.status,
      body,
      res.headers.get("retry-after"),
      res.headers.get("x-influxdb-error") || res.statusText,
    );
  };

  return createLineWriter(
    { api: "InfluxDB v1 API", notFound: `database "${opts.bucket}" not found` },
    send,
    opts,
  );
}

/**
 * `{url}/write?db=…&precision=ns`, keeping a path prefix (InfluxDB behind a proxy) and moving
 * `user:password@` into `u`/`p`: fetch refuses URLs with credentials.
 */
function writeUrl(raw: string, database: string): URL {
  const base = databaseUrl(raw, database);
  const url = new URL(base.href);
  url.username = "";
  url.password = "";
  url.pathname = `${base.pathname.replace(/\/+$/, "")}/write`;
  url.searchParams.set("db", database);
  url.searchParams.set("precision", "ns");
  if (base.username) url.searchParams.set("u", decodeURIComponent(base.username));
  if (base.password) url.searchParams.set("p", decodeURIComponent(base.password));
  return url;
}
