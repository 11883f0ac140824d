/**
 * The short form of `npm run chaos`, part of `npm test`: real servers, real faults, exact counts.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { beforeAll, expect, it } from "vitest";
import { formatReport, runChaos } from "./chaos/chaos.ts";

beforeAll(() => {
  execFileSync(process.execPath, ["scripts/build.mjs", "reader"], {
    cwd: join(import.meta.dirname, ".."),
    stdio: "ignore",
  });
});

it("loses nothing and doubles nothing across reader SIGKILLs, dropped connections, an InfluxDB outage and scorer failures", async () => {
  const report = await runChaos({
    records: 800,
    kills: 3,
    connectionDrops: 1,
    influxOutageMs: 2500,
    scorerFailRate: 0.05,
    sendMs: 8000,
    settleTimeoutMs: 120_000,
  });
  process.stderr.write(`${formatReport(report)}\n`);
  expect(report.reader_kills).toBe(3);
  expect(report).toMatchObject({
    records_lost: 0,
    duplicate_points: 0,
    duplicate_alerts: 0,
    missing_alerts: 0,
    duplicate_dlq_entries: 0,
    points_written: report.valid,
    dlq_entries: report.invalid + report.poison,
    alerts: report.alerts_expected,
  });
}, 240_000);
