/**
 * Campaign alerts through the real pipeline (issue 14): real ModSecurity + CRS records, all
 * from one client (127.0.0.1, as the corpus was recorded), replayed into the stream while the
 * reader and the local Lambda runtime are both SIGKILLed mid-window and started again. Then:
 * exactly one campaign alert per window that reached the trigger, listed once and notified to
 * the webhook under one delivery id, whatever the crash redelivered.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { replay, sourceOf } from "../cli/replay.ts";
import { streamIdMs } from "../core/stream/entry.ts";
import { type RunningService, startRedis, startVictoriaMetrics } from "../local/services.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { corpusLines } from "./fixtures/records.ts";
import { type Receiver, startReceiver } from "./receivers.ts";
import { until } from "./wait.ts";

/** A day: the run almost always falls in one window; at a day's edge, two are accounted for. */
const WINDOW_S = 86_400;
const MIN_EVENTS = 20;
const RECORDS = corpusLines("crs3-pl1.jsonl.gz").slice(0, 400);
const NL = Buffer.from("\n");

let redisServer: RunningService;
let victoria: RunningService;
let webhook: Receiver;
let stack: Stack;
let redis: Redis;
let entryMs: number[] = [];

beforeAll(async () => {
  redisServer = await startRedis();
  victoria = await startVictoriaMetrics();
  webhook = await startReceiver({ path: "/hook" });
  stack = await startStack({
    logDir: mkdtempSync(join(tmpdir(), "waf-campaign-")),
    redisUrl: redisServer.url,
    influxUrl: victoria.url,
    env: {
      LOG_LEVEL: "warn",
      POWERTOOLS_METRICS_DISABLED: "true",
      CAMPAIGN_WINDOW_S: String(WINDOW_S),
      CAMPAIGN_MIN_EVENTS: String(MIN_EVENTS),
      ALERT_WEBHOOK_URL: webhook.url,
      BATCH_SIZE: "20",
      CLAIM_IDLE_MS: "1500",
    },
  });
  redis = new Redis(redisServer.url);
  const sending = replay(
    redis,
    [sourceOf("corpus", Buffer.concat(RECORDS.flatMap((r) => [r, NL])))],
    {
      shards: [{ index: 0, stream: "waf-realtime", dlq: "waf-realtime:dlq" }],
      field: "event",
      rate: 200,
    },
  );
  await until("a first part of the records is scored", async () => {
    const g = (await redis.xinfo("GROUPS", "waf-realtime")) as unknown[][];
    const row = g[0] ?? [];
    return Number(row[row.indexOf("entries-read") + 1]) > 60;
  });
  // The whole pipeline dies mid-window, with batches and alert events in flight.
  await Promise.all([stack.stopReader("SIGKILL"), stack.stopRuntime("SIGKILL")]);
  expect((await sending).sent).toBe(RECORDS.length);
  await stack.startRuntime();
  await stack.startReader({ CONSUMER_NAME: "after-the-crash" });
  await until(
    "every record settled and the alert queue drained",
    async () => {
      const g = (await redis.xinfo("GROUPS", "waf-realtime")) as unknown[][];
      const row = g[0] ?? [];
      const at = (k: string) => Number(row[row.indexOf(k) + 1]);
      return at("entries-read") === RECORDS.length && at("pending") === 0;
    },
    90_000,
  );
  entryMs = (await redis.xrange("waf-realtime", "-", "+")).map(([id]) => streamIdMs(id) ?? 0);
  // Notifications run after the alert is listed: give the last ones time to arrive.
  await until(
    "the campaign alerts are notified",
    async () => {
      const listed = (await redis.lrange("waf-alerts", 0, -1)).filter((a) =>
        a.includes('"kind":"campaign"'),
      ).length;
      const sent = new Set(campaignNotifications().map((n) => n.delivery)).size;
      return listed > 0 && sent >= listed;
    },
    30_000,
  );
  await new Promise((r) => setTimeout(r, 1000));
}, 180_000);

afterAll(async () => {
  await redis?.quit();
  await stack?.stop();
  await webhook?.close();
  await victoria?.stop();
  await redisServer?.stop();
});

function campaignNotifications() {
  return webhook.requests.flatMap((r) => {
    const body = r.json as { type?: string; alert?: { kind?: string; tx_id: string } };
    return body.type === "alert" && body.alert?.kind === "campaign"
      ? [{ txId: body.alert.tx_id, delivery: String(r.headers["x-waf-delivery"]) }]
      : [];
  });
}

describe("campaign alerts through the real pipeline, crashed mid-window", () => {
  it("lists exactly one campaign alert per window that reached the trigger, for the corpus's one client", async () => {
    const campaigns = (await redis.lrange("waf-alerts", 0, -1))
      .map(
        (a) =>
          JSON.parse(a) as {
            kind?: string;
            tx_id: string;
            client_ip: string;
            window_start: number;
            events: number;
          },
      )
      .filter((a) => a.kind === "campaign");
    // Windows the records' stream entries fall in, with how many records each got.
    const perWindow = new Map<number, number>();
    for (const ms of entryMs) {
      const w = Math.floor(ms / 1000 / WINDOW_S) * WINDOW_S;
      perWindow.set(w, (perWindow.get(w) ?? 0) + 1);
    }
    const full = [...perWindow].filter(([, n]) => n >= MIN_EVENTS).map(([w]) => w);
    expect(full.length).toBeGreaterThanOrEqual(1);
    const windows = campaigns.map((c) => c.window_start).sort();
    expect(new Set(windows).size).toBe(windows.length);
    for (const w of full) expect(windows).toContain(w);
    for (const w of windows) expect(perWindow.has(w)).toBe(true);
    for (const c of campaigns) {
      expect(c.client_ip).toBe("127.0.0.1");
      expect(c.tx_id).toBe(`campaign:127.0.0.1:${c.window_start}`);
      expect(c.events).toBeGreaterThanOrEqual(1);
    }
  });

  it("notifies each campaign alert under one delivery id (a redelivered one is the same notification)", async () => {
    const campaigns = (await redis.lrange("waf-alerts", 0, -1)).filter((a) =>
      a.includes('"kind":"campaign"'),
    );
    const sent = campaignNotifications();
    const byTx = new Map<string, Set<string>>();
    for (const n of sent) byTx.set(n.txId, (byTx.get(n.txId) ?? new Set()).add(n.delivery));
    expect(byTx.size).toBe(campaigns.length);
    for (const ids of byTx.values()) expect(ids.size).toBe(1);
  });
});
