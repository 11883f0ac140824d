/**
 * The scoring function's handler (reference §4–§5) with fakes of our own ports and a real
 * Powertools Logger, called as Lambda calls it: `(event, context)`.
 */
import { Logger } from "@aws-lambda-powertools/logger";
import type { Context } from "aws-lambda";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Alert } from "../core/alert/alert.ts";
import type { AlertPayload, AlertQueue } from "../core/alert/alert-queue.ts";
import { loadConfig } from "../core/config.ts";
import type { PointLine, PointWriter, WriteOutcome } from "../core/metrics/writer.ts";
import { scorerSettingsFrom } from "../core/scorer.ts";
import { corazaText, envelope } from "../test/fixtures/records.ts";
import { captureLogs, fakeContext, type LogLine } from "../test/lambda.ts";
import { createHandler, InvalidBatchError, type ScoreDeps } from "./score.ts";

/** Every JSON line the logger printed, parsed. */
let logs: LogLine[];

beforeEach(() => {
  logs = captureLogs();
});

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

function context(): Context {
  return fakeContext("waf-scorer", "c6af9ac6-7b61-11e6-9a41-93e812345678");
}

interface Fakes {
  lines: PointLine[];
  payloads: AlertPayload[];
  alerts(): Alert[];
}

function setup(
  opts: {
    env?: Record<string, string>;
    outcome?: (line: PointLine) => WriteOutcome;
    enqueue?: AlertQueue["enqueue"];
  } = {},
) {
  const lines: PointLine[] = [];
  const payloads: AlertPayload[] = [];
  const writer: PointWriter = {
    async write(batch) {
      lines.push(...batch);
      return batch.map(opts.outcome ?? ((l) => ({ key: l.key, status: "accepted" })));
    },
    async close() {},
  };
  const alerts: AlertQueue = {
    enqueue:
      opts.enqueue ??
      (async (p) => {
        payloads.push(p);
      }),
  };
  const deps: ScoreDeps = {
    settings: scorerSettingsFrom(loadConfig(opts.env ?? {})),
    writer,
    alerts,
    logger: new Logger({ serviceName: "waf-scorer", logLevel: "DEBUG" }),
  };
  const fakes: Fakes = {
    lines,
    payloads,
    alerts: () => payloads.flatMap((p) => (JSON.parse(p.body) as { alerts: Alert[] }).alerts),
  };
  return { handler: createHandler(deps), fakes };
}

const record = (id: string, body: unknown) => ({
  id,
  data: typeof body === "string" ? body : JSON.stringify(body),
  deliveryCount: 1,
});

describe("score handler", () => {
  it("answers exactly { batchItemFailures, rejected }", async () => {
    const { handler } = setup({
      outcome: (l) =>
        l.key === "2-0"
          ? { key: l.key, status: "failed", reason: "503" }
          : { key: l.key, status: "accepted" },
    });
    const res = await handler(
      {
        records: [
          record("1-0", envelope({ id: "a", anomaly: 65 })),
          record("2-0", envelope({ id: "b" })),
          record("3-0", "not json"),
        ],
      },
      context(),
    );
    expect(res).toStrictEqual({
      batchItemFailures: [{ itemIdentifier: "2-0" }],
      rejected: [{ itemIdentifier: "3-0", reason: expect.stringMatching(/^not JSON/) }],
    });
  });

  it("answers empty lists when every record is done", async () => {
    const { handler, fakes } = setup();
    const res = await handler(
      { records: [record("1-0", envelope({ id: "a", anomaly: 65 }))] },
      context(),
    );
    expect(res).toStrictEqual({ batchItemFailures: [], rejected: [] });
    expect(fakes.lines.map((l) => l.key)).toEqual(["1-0"]);
    expect(fakes.alerts().map((a) => a.tx_id)).toEqual(["a"]);
  });

  it("fails the critical record whose alert could not be queued", async () => {
    const { handler } = setup({
      enqueue: async () => {
        throw new Error("ALERT_FUNCTION is not set");
      },
    });
    const res = await handler(
      {
        records: [
          record("1-0", envelope({ id: "a", anomaly: 65 })),
          record("2-0", envelope({ id: "b" })),
        ],
      },
      context(),
    );
    expect(res).toStrictEqual({ batchItemFailures: [{ itemIdentifier: "1-0" }], rejected: [] });
    expect(logs).toContainEqual(
      expect.objectContaining({
        level: "WARN",
        message: "record failed",
        stream_id: "1-0",
        reason: expect.stringContaining("ALERT_FUNCTION is not set"),
      }),
    );
  });

  it.each([
    ["nothing", undefined],
    ["null", null],
    ["an object without records", {}],
    ["records that are not an array", { records: "1-0" }],
    ["a record without an id", { records: [{ id: "", data: "{}", deliveryCount: 1 }] }],
    [
      "a record whose data is not a string",
      { records: [{ id: "1-0", data: {}, deliveryCount: 1 }] },
    ],
    ["a negative delivery count", { records: [{ id: "1-0", data: "{}", deliveryCount: -1 }] }],
  ])("throws InvalidBatchError for %s, writing nothing", async (_what, event) => {
    const { handler, fakes } = setup();
    await expect(handler(event, context())).rejects.toBeInstanceOf(InvalidBatchError);
    expect(fakes.lines).toEqual([]);
    expect(fakes.payloads).toEqual([]);
  });

  it("logs each critical event with tx_id, client_ip, severity and rule_id, in structured JSON", async () => {
    const { handler } = setup();
    await handler(
      {
        records: [
          record("1-0", envelope({ id: "tx-crit", anomaly: 65 })),
          record("2-0", envelope({ id: "tx-low" })),
        ],
      },
      context(),
    );
    const critical = logs.filter((l) => l.message === "critical event");
    expect(critical).toHaveLength(1);
    expect(critical[0]).toMatchObject({
      level: "INFO",
      service: "waf-scorer",
      timestamp: expect.any(String),
      tx_id: "tx-crit",
      client_ip: "203.0.113.9",
      severity: 95,
      severity_level: "critical",
      rule_id: "942100",
      stream_id: "1-0",
      function_request_id: "c6af9ac6-7b61-11e6-9a41-93e812345678",
    });
    expect(logs).toContainEqual(
      expect.objectContaining({ message: "event scored", level: "DEBUG", tx_id: "tx-low" }),
    );
    expect(logs).toContainEqual(
      expect.objectContaining({ message: "batch scored", records: 2, scored: 2, alerts: 1 }),
    );
  });

  it("logs no secret carried by a record: URI tokens, Authorization headers", async () => {
    const { handler, fakes } = setup();
    await handler(
      {
        records: [
          record("1-0", envelope({ id: "a", anomaly: 65, uri: "/login?token=s3cr3t-T0KEN&x=1" })),
          record("2-0", corazaText({ id: "b", rules: [{ id: 942100, severity: 2 }] })),
          record(
            "3-0",
            '{"transaction":{"request":{"headers":{"Authorization":"Bearer secret-token"}}',
          ),
        ],
      },
      context(),
    );
    expect(logs.length).toBeGreaterThan(0);
    const printed = JSON.stringify(logs);
    const sent = JSON.stringify([fakes.lines, fakes.payloads]);
    for (const secret of ["s3cr3t-T0KEN", "secret-token", "Bearer"]) {
      expect(printed).not.toContain(secret);
      expect(sent).not.toContain(secret);
    }
    expect(fakes.alerts()[0]?.uri).toBe("/login?token=[REDACTED]&x=1");
  });

  it("masks every IP it logs, writes and alerts with IP_MASKING=truncate", async () => {
    const { handler, fakes } = setup({ env: { IP_MASKING: "truncate" } });
    await handler(
      {
        records: [
          record("1-0", envelope({ id: "v4", anomaly: 65, ip: "203.0.113.9" })),
          record("2-0", envelope({ id: "v6", anomaly: 65, ip: "2001:db8:1:2::9" })),
        ],
      },
      context(),
    );
    const critical = logs.filter((l) => l.message === "critical event");
    expect(critical.map((l) => [l.tx_id, l.client_ip])).toEqual([
      ["v4", "203.0.113.0"],
      ["v6", "2001:db8:1::"],
    ]);
    expect(fakes.alerts().map((a) => a.client_ip)).toEqual(["203.0.113.0", "2001:db8:1::"]);
    expect(fakes.lines[0]?.line).toContain("client_ip=203.0.113.0,");
    expect(fakes.lines[1]?.line).toContain("client_ip=2001:db8:1::,");
    const everything = JSON.stringify([logs, fakes.lines, fakes.payloads]);
    expect(everything).not.toContain("203.0.113.9");
    expect(everything).not.toContain("2001:db8:1:2::9");
  });
});
