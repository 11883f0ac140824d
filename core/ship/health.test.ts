import { afterEach, describe, expect, it } from "vitest";
import { type ShipHealth, startShipHealth } from "./health.ts";
import type { ShipperStats } from "./shipper.ts";

const stats = (o: Partial<ShipperStats & { running: boolean }> = {}) => ({
  shipped: 7,
  lag_bytes: 0,
  errors: 0,
  skipped_oversize: 0,
  files: 1,
  redis_ok: true,
  running: true,
  ...o,
});

let health: ShipHealth | undefined;
afterEach(async () => {
  await health?.close();
  health = undefined;
});

async function answer(s: ReturnType<typeof stats>) {
  health = await startShipHealth({ port: 0, stats: () => s });
  const res = await fetch(health.url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("waf ship /healthz", () => {
  it("answers 200 and ok while shipping", async () => {
    expect(await answer(stats())).toMatchObject({
      status: 200,
      body: { status: "ok", shipped: 7 },
    });
  });

  it("stays 200 during a Redis outage and says so in the body (a restart would not help)", async () => {
    const r = await answer(stats({ redis_ok: false, errors: 3, last_error: "ECONNREFUSED" }));
    expect(r).toMatchObject({
      status: 200,
      body: { status: "redis_failing", redis_ok: false, errors: 3, last_error: "ECONNREFUSED" },
    });
  });

  it("answers 503 once the shipper stopped", async () => {
    expect(await answer(stats({ running: false }))).toMatchObject({
      status: 503,
      body: { status: "stopped" },
    });
  });

  it("listens on loopback only by default", () => {
    return startShipHealth({ port: 0, stats: () => stats() }).then((h) => {
      health = h;
      expect(new URL(h.url).hostname).toBe("127.0.0.1");
    });
  });
});
