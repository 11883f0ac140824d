/**
 * The whole pipeline on one machine, as separate processes like on AWS: throwaway Redis and
 * InfluxDB-protocol servers (unless URLs are given), the local Lambda runtime hosting the
 * scoring and alert handlers, and the stream reader calling it through the AWS SDK.
 * Used by `npm start` and by the integration tests.
 */

import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, openSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  freePort,
  type RunningService,
  startInfluxDB1,
  startRedis,
  startVictoriaMetrics,
} from "./services.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * The Node flags the reader's bundle runs with: the Fargate image's (Dockerfile, target reader;
 * a test keeps the two equal). A small young generation and a bounded old one keep the reader's
 * memory flat under a backlog (docs/benchmarks.md). WAF_READER_NODE_FLAGS replaces them locally,
 * for measuring others.
 */
export const READER_NODE_FLAGS = ["--max-semi-space-size=8", "--max-old-space-size=768"] as const;

function readerNodeFlags(): string[] {
  const custom = process.env.WAF_READER_NODE_FLAGS;
  return custom === undefined ? [...READER_NODE_FLAGS] : custom.split(/\s+/).filter(Boolean);
}

export interface StackOptions {
  /** Use this Redis; unset = start a throwaway one. */
  redisUrl?: string;
  /** Use this InfluxDB; unset = start a throwaway VictoriaMetrics (v2) or InfluxDB 1.x (v1). */
  influxUrl?: string;
  influxApi?: "v1" | "v2";
  /** Further reference §6 variables for every process (STREAM_KEY, BATCH_SIZE, …). */
  env?: Record<string, string | undefined>;
  /** Where the processes' logs go (one file each). */
  logDir: string;
  /** Run the reader's production bundle (dist/reader/main.mjs) instead of the TypeScript. */
  readerBundle?: boolean;
}

export interface Stack {
  readonly env: Record<string, string | undefined>;
  readonly redisUrl: string;
  readonly influxUrl: string;
  readonly influxApi: "v1" | "v2";
  readonly lambdaUrl: string;
  /** The reader's health endpoint (`GET /healthz`), once it runs. */
  healthUrl(): string | undefined;
  readonly services: { redis?: RunningService; influx?: RunningService };
  reader(): ChildProcess;
  runtime(): ChildProcess;
  /** Starts the reader (again), optionally with extra variables (e.g. a new CONSUMER_NAME). */
  startReader(extraEnv?: Record<string, string>): Promise<void>;
  /** Sends a signal to the reader and waits for it to exit. */
  stopReader(signal?: NodeJS.Signals): Promise<number | null>;
  /**
   * Starts one more reader (another task of the same service; give it its own CONSUMER_NAME),
   * logging to `<name>.log`; `stop()` stops it too.
   */
  addReader(
    name: string,
    extraEnv?: Record<string, string>,
  ): Promise<{ process: ChildProcess; stop(signal?: NodeJS.Signals): Promise<number | null> }>;
  startRuntime(): Promise<void>;
  stopRuntime(signal?: NodeJS.Signals): Promise<number | null>;
  /** Drains the reader, stops the runtime, stops the servers this stack started. */
  stop(): Promise<void>;
}

function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((res) => child.once("exit", (code) => res(code)));
}

async function stopChild(
  child: ChildProcess | undefined,
  signal: NodeJS.Signals,
  graceMs = 30_000,
) {
  if (!child) return null;
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = waitExit(child);
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  mkdirSync(opts.logDir, { recursive: true });
  const services: Stack["services"] = {};
  const influxApi = opts.influxApi ?? (opts.env?.INFLUXDB_API as "v1" | "v2" | undefined) ?? "v2";
  // The bucket (database on 1.x) as the caller or the environment names it (npm start passes it
  // through the environment).
  const bucket = opts.env?.INFLUXDB_BUCKET ?? (process.env.INFLUXDB_BUCKET || "waf-realtime");
  let redisUrl = opts.redisUrl;
  let influxUrl = opts.influxUrl;
  try {
    if (!redisUrl) {
      services.redis = await startRedis();
      redisUrl = services.redis.url;
    }
    if (!influxUrl) {
      services.influx =
        influxApi === "v1"
          ? await startInfluxDB1({ database: bucket })
          : await startVictoriaMetrics();
      influxUrl = services.influx.url;
    }
  } catch (err) {
    await Promise.allSettled([services.redis?.stop(), services.influx?.stop()]);
    throw err;
  }

  const lambdaPort = await freePort();
  const lambdaUrl = `http://127.0.0.1:${lambdaPort}`;
  const env: Record<string, string | undefined> = {
    ...process.env,
    SCORER_FUNCTION: "waf-scorer",
    ALERT_FUNCTION: "waf-alerter",
    // Several stacks share a machine in tests: a free port unless one is asked for.
    HEALTH_PORT: "0",
    ...opts.env,
    REDIS_URL: redisUrl,
    INFLUXDB_URL: influxUrl,
    INFLUXDB_API: influxApi,
    INFLUXDB_BUCKET: bucket,
    LOCAL_LAMBDA_PORT: String(lambdaPort),
    // The Invoke API answers only callers that hold this run's token (local/lambda-server.ts).
    LOCAL_LAMBDA_TOKEN: randomBytes(24).toString("hex"),
    AWS_ENDPOINT_URL_LAMBDA: lambdaUrl,
    AWS_REGION: process.env.AWS_REGION ?? "us-east-1",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
  };

  let runtime: ChildProcess | undefined;
  let healthPort: number | undefined;
  let reader: ChildProcess | undefined;
  const spawnTs = (
    name: string,
    file: string,
    useTsx: boolean,
    extraEnv: Record<string, string> = {},
  ): ChildProcess => {
    const log = openSync(join(opts.logDir, `${name}.log`), "a");
    return fork(file, [], {
      cwd: ROOT,
      env: { ...env, ...extraEnv },
      // The bundle runs with the Fargate image's Node flags (Dockerfile, target reader).
      execArgv: [
        ...(useTsx ? ["--import", "tsx"] : readerNodeFlags()),
        // WAF_CPU_PROF_DIR=dir: V8 CPU profiles of every process, for finding where time goes.
        ...(process.env.WAF_CPU_PROF_DIR
          ? ["--cpu-prof", `--cpu-prof-dir=${process.env.WAF_CPU_PROF_DIR}`]
          : []),
      ],
      stdio: ["ignore", log, log, "ipc"],
      // Its own process group: on Ctrl-C only `npm start` hears SIGINT, and stops the reader
      // (drain), then the runtime, then the servers, in that order. If the parent dies, the
      // IPC channel closes and the child stops by itself (local/child.ts).
      detached: true,
    });
  };

  const startRuntime = async () => {
    const child = spawnTs("runtime", join(ROOT, "local/runtime.ts"), true);
    runtime = child;
    await new Promise<void>((res, rej) => {
      const onExit = (code: number | null) =>
        rej(
          new Error(
            `local Lambda runtime exited with ${code} (see ${join(opts.logDir, "runtime.log")})`,
          ),
        );
      child.once("exit", onExit);
      child.on("message", (m: { ready?: string }) => {
        if (m?.ready) {
          child.off("exit", onExit);
          res();
        }
      });
    });
  };

  /** Starts a reader process logging to `<name>.log`; resolves once it reads. */
  const launchReader = async (name: string, extraEnv: Record<string, string>) => {
    const child = opts.readerBundle
      ? spawnTs(name, join(ROOT, "dist/reader/main.mjs"), false, extraEnv)
      : spawnTs(name, join(ROOT, "functions/reader/main.ts"), true, extraEnv);
    await new Promise<void>((res, rej) => {
      const onExit = (code: number | null) =>
        rej(new Error(`reader exited with ${code} (see ${join(opts.logDir, `${name}.log`)})`));
      child.once("exit", onExit);
      child.on("message", (m: { ready?: boolean; healthPort?: number }) => {
        if (m?.ready) {
          if (name === "reader") healthPort = m.healthPort;
          child.off("exit", onExit);
          res();
        }
      });
    });
    return child;
  };
  const extraReaders: ChildProcess[] = [];

  const startReader = async (extraEnv: Record<string, string> = {}) => {
    reader = await launchReader("reader", extraEnv);
  };

  try {
    await startRuntime();
    await startReader();
  } catch (err) {
    await stopChild(reader, "SIGKILL");
    await stopChild(runtime, "SIGKILL");
    await Promise.allSettled([services.redis?.stop(), services.influx?.stop()]);
    throw err;
  }

  return {
    env,
    redisUrl,
    influxUrl,
    influxApi,
    lambdaUrl,
    healthUrl: () => (healthPort ? `http://127.0.0.1:${healthPort}/healthz` : undefined),
    services,
    reader: () => reader as ChildProcess,
    runtime: () => runtime as ChildProcess,
    startReader,
    stopReader: (signal = "SIGTERM") => stopChild(reader, signal),
    async addReader(name, extraEnv = {}) {
      const child = await launchReader(name, extraEnv);
      extraReaders.push(child);
      return { process: child, stop: (signal = "SIGTERM") => stopChild(child, signal) };
    },
    startRuntime,
    stopRuntime: (signal = "SIGTERM") => stopChild(runtime, signal),
    async stop() {
      await Promise.all(extraReaders.map((r) => stopChild(r, "SIGTERM")));
      await stopChild(reader, "SIGTERM");
      await stopChild(runtime, "SIGTERM");
      await Promise.allSettled([services.redis?.stop(), services.influx?.stop()]);
    },
  };
}
