/**
 * Redis AUTH and TLS (`rediss://`) through the whole pipeline: the reader (production bundle)
 * and the local runtime connect with the password, over TLS, to a real `redis-server`.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis, type RedisOptions } from "ioredis";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type RunningService, startRedis } from "../local/services.ts";
import { type Stack, startStack } from "../local/stack.ts";
import { envelope } from "./fixtures/records.ts";
import { until } from "./wait.ts";

const ROOT = join(import.meta.dirname, "..");

/** A throwaway CA and a server certificate for 127.0.0.1, made with openssl. */
function makeCerts(): { dir: string; caFile: string; certFile: string; keyFile: string } {
  const dir = mkdtempSync(join(tmpdir(), "waf-tls-"));
  const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  run([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-subj",
    "/CN=waf-test-ca",
  ]);
  run([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  ]);
  execFileSync("sh", ["-c", 'printf "subjectAltName=IP:127.0.0.1,DNS:localhost" > san.ext'], {
    cwd: dir,
  });
  run([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "1",
    "-extfile",
    "san.ext",
  ]);
  return {
    dir,
    caFile: join(dir, "ca.pem"),
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server.key"),
  };
}

async function flows(stack: Stack, clientOpts: RedisOptions = {}): Promise<void> {
  const redis = new Redis(stack.redisUrl, clientOpts);
  try {
    await redis.xadd(
      "waf-realtime",
      "*",
      "event",
      JSON.stringify(envelope({ id: "secure-1", anomaly: 65 })),
    );
    await redis.xadd("waf-realtime", "*", "event", "{not json");
    await until("the alert", async () => (await redis.llen("waf-alerts")) === 1);
    await until("the DLQ entry", async () => (await redis.xlen("waf-realtime:dlq")) === 1);
    const [alert] = await redis.lrange("waf-alerts", 0, 0);
    expect(JSON.parse(alert as string)).toMatchObject({ tx_id: "secure-1", severity: 95 });
  } finally {
    await redis.quit();
  }
}

beforeAll(() => {
  execFileSync(process.execPath, ["scripts/build.mjs", "reader"], { cwd: ROOT, stdio: "ignore" });
});

describe("Redis AUTH and TLS", () => {
  let redisServer: RunningService | undefined;
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    await redisServer?.stop();
    stack = undefined;
    redisServer = undefined;
  });

  it("runs the pipeline against a Redis with requirepass", async () => {
    redisServer = await startRedis({ password: "s3cret pass/with:chars" });
    // Without the password the server refuses commands (raw RESP, no client library in between).
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect((redisServer as RunningService).port, "127.0.0.1", () =>
        sock.write("PING\r\n"),
      );
      sock.once("data", (d) => {
        resolve(d.toString());
        sock.destroy();
      });
      sock.once("error", reject);
    });
    expect(reply).toMatch(/^-NOAUTH/);
    stack = await startStack({
      redisUrl: redisServer.url,
      logDir: mkdtempSync(join(tmpdir(), "waf-auth-")),
      readerBundle: true,
      env: { LOG_LEVEL: "warn", POWERTOOLS_METRICS_DISABLED: "true" },
    });
    await flows(stack);
  });

  it("stops the reader with a clear error, naming the problem, when the password is wrong", async () => {
    redisServer = await startRedis({ password: "right" });
    const out = (() => {
      try {
        execFileSync(process.execPath, ["dist/reader/main.mjs"], {
          cwd: ROOT,
          env: {
            PATH: process.env.PATH,
            REDIS_URL: (redisServer as RunningService).url.replace(":right@", ":wrong@"),
            SCORER_FUNCTION: "waf-scorer",
            HEALTH_PORT: "0",
            AWS_REGION: "us-east-1",
          },
          timeout: 20_000,
          stdio: "pipe",
        });
        return { code: 0, stderr: "" };
      } catch (e) {
        const err = e as { status: number; stderr: Buffer };
        return { code: err.status, stderr: err.stderr.toString() };
      }
    })();
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/WRONGPASS|invalid username-password/);
    expect(out.stderr).not.toContain("wrong@");
  });

  it("runs the pipeline over TLS (rediss://) with a password", async () => {
    const certs = makeCerts();
    redisServer = await startRedis({ password: "tls-pass", tls: certs });
    expect(redisServer.url.startsWith("rediss://")).toBe(true);
    stack = await startStack({
      redisUrl: redisServer.url,
      logDir: mkdtempSync(join(tmpdir(), "waf-tls-")),
      readerBundle: true,
      // Node trusts the test CA the way a deployment trusts its provider's CA.
      env: {
        LOG_LEVEL: "warn",
        POWERTOOLS_METRICS_DISABLED: "true",
        NODE_EXTRA_CA_CERTS: certs.caFile,
      },
    });
    await flows(stack, { tls: { ca: readFileSync(certs.caFile) } });
  });
});
