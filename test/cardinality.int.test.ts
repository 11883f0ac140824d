/**
 * Issue 12, row 1, on the real database: an attacker with many IPv6 addresses fills InfluxDB
 * 1.x's per-tag value cap (`max-values-per-tag`, set low here). Every later critical event
 * still alerts exactly once — with `INFLUX_IP_AS=tag`, whose points are now refused (counted
 * and dead-lettered with the database's reason), and with `field`, where the series count is
 * bounded and no point is refused at all.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { type RunningService, startInfluxDB1 } from "../local/services.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { envelope } from "./fixtures/records.ts";
import { influxRows } from "./readback.ts";
import { until } from "./wait.ts";

const DB = "waf-cardinality";
const CAP = 20;
/** One /64, as an attacker holding it would use it. */
const attacker = (i: number) => `2001:db8:bad:1::${(i + 1).toString(16)}`;

describe.each(["tag", "field"] as const)(
  "INFLUX_IP_AS=%s with max-values-per-tag reached",
  (ipAs) => {
    let influx: RunningService | undefined;
    let stack: Stack | undefined;
    let redis: Redis | undefined;
    afterEach(async () => {
      await redis?.quit().catch(() => undefined);
      await stack?.stop();
      await influx?.stop();
    });

    it("alerts every later critical event exactly once", async () => {
      influx = await startInfluxDB1({ database: DB, maxValuesPerTag: CAP });
      stack = await startStack({
        logDir: mkdtempSync(join(tmpdir(), "waf-cardinality-")),
        influxUrl: influx.url,
        influxApi: "v1",
        env: {
          LOG_LEVEL: "warn",
          POWERTOOLS_METRICS_DISABLED: "true",
          INFLUXDB_BUCKET: DB,
          INFLUX_IP_AS: ipAs,
          MAX_RETRIES: "2",
          CAMPAIGN_MIN_EVENTS: "0",
        },
      });
      redis = new Redis(stack.redisUrl);
      // The flood: low-severity requests from 2 × CAP addresses of one /64.
      const flood = redis.pipeline();
      for (let i = 0; i < 2 * CAP; i++) {
        const record = envelope({
          id: `flood-${i}`,
          ip: attacker(i),
          anomaly: 5,
          rules: ["920350"],
        });
        flood.xadd("waf-realtime", "*", "event", JSON.stringify(record));
      }
      await flood.exec();
      await until("the flood settled", async () => {
        const g = (await redis?.xinfo("GROUPS", "waf-realtime")) as unknown[][];
        const row = g[0] ?? [];
        const at = (k: string) => Number(row[row.indexOf(k) + 1]);
        return at("entries-read") === 2 * CAP && at("pending") === 0;
      });
      // Then the attack that matters, from addresses the database has not seen.
      const critical = Array.from({ length: 5 }, (_, i) => `crit-${i}`);
      const attack = redis.pipeline();
      critical.forEach((tx, i) => {
        const record = envelope({ id: tx, ip: attacker(1000 + i), anomaly: 65, rules: ["942100"] });
        attack.xadd("waf-realtime", "*", "event", JSON.stringify(record));
      });
      await attack.exec();

      const listed = await until("an alert for every critical event", async () => {
        const alerts = (await redis?.lrange("waf-alerts", 0, -1)) ?? [];
        const ids = alerts.map((a) => JSON.parse(a).tx_id as string);
        return critical.every((tx) => ids.includes(tx)) && ids;
      });
      // Nothing pending: every record settled (done or dead-lettered), and no alert twice.
      await until("nothing pending", async () => {
        const g = (await redis?.xinfo("GROUPS", "waf-realtime")) as unknown[][];
        const row = g[0] ?? [];
        return Number(row[row.indexOf("pending") + 1]) === 0;
      });
      const final = ((await redis.lrange("waf-alerts", 0, -1)) ?? []).map(
        (a) => JSON.parse(a).tx_id as string,
      );
      expect(final.sort()).toEqual([...critical].sort());
      expect(listed.length).toBe(critical.length);

      const dlq = await redis.xrange("waf-realtime:dlq", "-", "+");
      const reasons = dlq.map(([, f]) => f[f.indexOf("reason") + 1] as string);
      const stored = await influxRows(influx.url, DB, 'SELECT count("severity") FROM "waf_events"');
      const points = Number(stored[0]?.count ?? 0);
      if (ipAs === "tag") {
        // The cap bites (InfluxDB checks it per write, so a batch can overshoot it a little):
        // every record whose point was refused is dead-lettered with the database's own reason.
        expect(reasons.length).toBeGreaterThanOrEqual(critical.length);
        expect(
          reasons.every((r) => /InfluxDB refused the point: .*max-values-per-tag/.test(r)),
        ).toBe(true);
        expect(points + reasons.length).toBe(2 * CAP + critical.length);
      } else {
        expect(reasons).toEqual([]);
        expect(points).toBe(2 * CAP + critical.length);
      }
    });
  },
);
