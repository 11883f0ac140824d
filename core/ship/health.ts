/**
 * `GET /healthz` for `waf ship` (on SHIP_HEALTH_PORT when set): 200 while the shipper runs, 503
 * once it stopped — the health of this process, as the reader's: during a Redis outage
 * restarting the shipper fixes nothing (it backs off and catches up from its checkpoint), so a
 * failing Redis shows in the body (`"status": "redis_failing"`, `redis_ok: false`, `errors`)
 * and in the logs, never as a 503 that would make a container orchestrator restart it in a
 * loop. The body: `shipped`, `lag_bytes`, `errors`, `skipped_oversize`, `files`. Loopback only
 * unless told otherwise: the figures are about this host's logs.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ShipperStats } from "./shipper.ts";

export interface ShipHealth {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

export async function startShipHealth(o: {
  port: number;
  host?: string;
  stats: () => ShipperStats & { running: boolean };
}): Promise<ShipHealth> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method !== "GET" || (path !== "/healthz" && path !== "/health")) {
      res.writeHead(404).end();
      return;
    }
    const s = o.stats();
    const status = !s.running ? "stopped" : s.redis_ok ? "ok" : "redis_failing";
    res.writeHead(s.running ? 200 : 503, { "content-type": "application/json" });
    res.end(JSON.stringify({ status, ...s }));
  });
  const host = o.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}/healthz`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
