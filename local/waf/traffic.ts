/**
 * Real WAF traffic: the requests of the corpus in test/fixtures/realwaf (the OWASP CRS v3.3.4
 * regression-test requests and 300 benign requests, byte for byte as they were sent), replayed
 * over plain TCP sockets so malformed requests stay malformed. Used by `npm start -- --demo`
 * and by the integration tests.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { sleep } from "../../core/lib/time.ts";

const REQUESTS = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../test/fixtures/realwaf/requests-crs3-pl1.jsonl.gz",
);

export interface CorpusRequest {
  /** CRS test title (`942100-1`) or `benign-N`. */
  test: string;
  kind: "attack" | "benign";
  /** The request exactly as sent when the corpus was made. */
  bytes: Buffer;
  /** Audit records it produced then (0 or 1). */
  records: number;
  /** The status the client saw then (null: no answer). */
  status: number | null;
  /** How long it took then. */
  elapsedMs: number;
}

let cached: CorpusRequest[] | undefined;

/** Every request of the corpus that was sent, in corpus order. */
export function corpusRequests(): CorpusRequest[] {
  if (cached) return cached;
  const out: CorpusRequest[] = [];
  for (const line of gunzipSync(readFileSync(REQUESTS)).toString("utf8").split("\n")) {
    if (line.trim() === "") continue;
    const r = JSON.parse(line) as {
      test: string;
      kind: "attack" | "benign";
      sent?: boolean;
      request_b64?: string;
      records?: number;
      status?: number | null;
      elapsed_ms?: number | null;
    };
    if (!r.sent || !r.request_b64) continue;
    out.push({
      test: r.test,
      kind: r.kind,
      bytes: Buffer.from(r.request_b64, "base64"),
      records: r.records ?? 0,
      status: r.status ?? null,
      elapsedMs: r.elapsed_ms ?? 0,
    });
  }
  cached = out;
  return out;
}

/**
 * Requests that answer quickly and predictably: no timeouts, no slow ones (a few CRS tests
 * send incomplete requests on purpose and wait for nginx's timeout).
 */
export function quickRequests(): CorpusRequest[] {
  return corpusRequests().filter((r) => r.status !== null && r.elapsedMs < 200);
}

/**
 * Sends raw request bytes to 127.0.0.1:`port` and resolves with the HTTP status of the answer
 * (undefined when none came, within `timeoutMs`). nginx closes after each response here.
 */
export function sendRaw(
  port: number,
  bytes: Buffer,
  timeoutMs = 5_000,
): Promise<number | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const socket = net.connect({ host: "127.0.0.1", port });
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const head = Buffer.concat(chunks).subarray(0, 64).toString("latin1");
      const m = /^HTTP\/\d(?:\.\d)? (\d{3})/.exec(head);
      resolve(m ? Number(m[1]) : undefined);
    };
    const timer = setTimeout(finish, timeoutMs);
    // No half-close: nginx takes a client's FIN before its answer for an abort (499) and closes
    // without answering. It closes after each response itself (keepalive_timeout 0).
    socket.on("connect", () => socket.write(bytes));
    socket.on("data", (d: Buffer) => {
      // Only the status line matters; keep reading (so nginx can finish) but not keeping.
      if (size < 64) chunks.push(d);
      size += d.length;
    });
    socket.on("error", finish);
    socket.on("close", finish);
  });
}

/**
 * Sends `requests` with at most `concurrency` connections at once; resolves with each one's
 * status, in order.
 */
export async function sendAll(
  port: number,
  requests: readonly CorpusRequest[],
  concurrency = 4,
): Promise<Array<number | undefined>> {
  const statuses: Array<number | undefined> = new Array(requests.length);
  let next = 0;
  const worker = async () => {
    while (next < requests.length) {
      const i = next++;
      statuses[i] = await sendRaw(port, (requests[i] as CorpusRequest).bytes);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return statuses;
}

/**
 * The requests interleaved across CRS rule files (942…, 941…, benign, …), so any stretch of the
 * demo shows every kind of traffic rather than a minute of protocol tests first.
 */
export function interleaved(requests: readonly CorpusRequest[]): CorpusRequest[] {
  const groups = new Map<string, CorpusRequest[]>();
  for (const r of requests) {
    const g = r.kind === "benign" ? "benign" : r.test.slice(0, 3);
    const list = groups.get(g);
    if (list) list.push(r);
    else groups.set(g, [r]);
  }
  const lists = [...groups.values()];
  const out: CorpusRequest[] = [];
  for (let i = 0; out.length < requests.length; i++)
    for (const list of lists) if (i < list.length) out.push(list[i] as CorpusRequest);
  return out;
}

/**
 * The demo's steady traffic: the corpus's attack and benign requests, interleaved, round and
 * round, `perSecond` of them each second, until `signal` aborts.
 */
export async function demoTraffic(port: number, perSecond: number, signal: AbortSignal) {
  const requests = interleaved(quickRequests());
  let i = 0;
  while (!signal.aborted) {
    const started = Date.now();
    const batch = Array.from(
      { length: perSecond },
      () => requests[i++ % requests.length] as CorpusRequest,
    );
    await sendAll(port, batch, 2);
    await sleep(1000 - (Date.now() - started), signal);
  }
}
