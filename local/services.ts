/**
 * Throwaway local servers for `npm start` and integration tests: Redis, VictoriaMetrics (the
 * InfluxDB v2 write-API stand-in) and InfluxDB 1.x, each on a free loopback port with its data in
 * a fresh temp dir. Real binaries, never mocks (reference §8).
 *
 * Lifecycle guarantees:
 * - every server is a direct child of this Node process, so Node reaps it: in these containers
 *   PID 1 does not, and a server stopped by anyone else can linger as a zombie;
 * - no server outlives this process: a synchronous kill runs on process `exit`, and a tiny
 *   watchdog (`sh` reading a pipe from us) kills the server when this process dies in a way that
 *   runs no handler (SIGKILL, an unhandled SIGTERM);
 * - servers do not keep the event loop alive: a script that forgets `stop()` still exits, and
 *   its servers go with it.
 *
 * @example
 * const redis = await startRedis();
 * const client = new Redis(redis.url);
 * // ...
 * await redis.stop();
 */

import { type ChildProcess, spawn } from "node:child_process";
import { accessSync, constants, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { sleep } from "../core/lib/time.ts";

/** A server started by this module. */
export interface RunningService {
  /** Connection URL: `redis://[:password@]127.0.0.1:PORT` or `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** The client-facing TCP port; it stays the same across `restart()`/`up()`. */
  readonly port: number;
  /** Data directory (a temp dir unless one was passed in); it survives `restart()`/`down()`. */
  readonly dir: string;
  /** PID of the server while it runs, `undefined` while it is down. */
  readonly pid: number | undefined;
  /**
   * Stops the server for good (SIGTERM, SIGKILL after ~5 s), then removes its temp dir (a dir
   * passed in by the caller is left alone). Idempotent.
   */
  stop(): Promise<void>;
  /**
   * Stops the process and starts it again on the same port and data dir. Redis runs without
   * persistence, so it comes back empty; VictoriaMetrics and InfluxDB keep their data.
   */
  restart(): Promise<void>;
  /**
   * Takes the server down but keeps its port number and data dir for a later `up()`: an outage
   * for fault tests. `"SIGKILL"` simulates a crash instead of a clean shutdown. While down,
   * another process could take the port; `up()` then fails with a clear error.
   */
  down(signal?: NodeJS.Signals): Promise<void>;
  /** Brings a server taken `down()` (or one that crashed) back on the same port and dir. */
  up(): Promise<void>;
}

/** A server binary is not installed. */
export class MissingBinaryError extends Error {
  override readonly name = "MissingBinaryError";
  constructor(
    readonly binary: string,
    options?: ErrorOptions,
  ) {
    super(
      `${binary} not found on PATH. Run \`node scripts/ensure-deps.mjs\` ` +
        "(or `apt-get install redis-server victoria-metrics influxdb`).",
      options,
    );
  }
}

/** A server did not become ready; `output` is the tail of what it printed. */
export class ServiceStartError extends Error {
  override readonly name = "ServiceStartError";
  constructor(
    readonly service: string,
    reason: string,
    readonly output: string,
    options?: ErrorOptions,
  ) {
    super(
      `${service} failed to start: ${reason}${output ? `\n--- ${service} output ---\n${output}` : ""}`,
      options,
    );
  }
}

const LOOPBACK = "127.0.0.1";
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 5_000;
const POLL_MS = 5;
/** Enough of a server's output to explain a failure without keeping its whole log in memory. */
const OUTPUT_TAIL_CHARS = 16_384;
/** Bind races are rare; a few retries on a fresh port make them invisible. */
const PORT_ATTEMPTS = 4;

/**
 * A TCP port that was free on 127.0.0.1 a moment ago. Another process may take it before you
 * bind it; the `start*` functions retry on a new port when that happens.
 */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

/** Holds all sockets open until every port is known, so the kernel cannot hand out one twice. */
async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, LOOPBACK, () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(
      servers.map(
        (s) => new Promise<void>((resolve) => (s.listening ? s.close(() => resolve()) : resolve())),
      ),
    );
  }
}

/** Every service still running, for `stopAll()` and the exit handler. */
const services = new Set<ManagedService>();

/** Stops every server this process started (each as `stop()` does). */
export async function stopAll(): Promise<void> {
  await Promise.all([...services].map((s) => s.stop()));
}

let exitHandlerInstalled = false;
function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  // Only synchronous work is possible here: SIGKILL (no time for a graceful stop), then rmSync.
  process.on("exit", () => {
    for (const service of services) service.killSync();
  });
}

/** PEM files for a TLS-only Redis (`rediss://`). */
export interface RedisTlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** What every throwaway Redis runs with: loopback only, nothing persisted, files in `dir`. */
const throwawayRedisArgs = (dir: string) => [
  "--bind",
  LOOPBACK,
  "--save",
  "",
  "--appendonly",
  "no",
  "--dir",
  dir,
];

/** The redis-server log line that proves *our* process listens (a port probe would not). */
const redisReady = async (proc: { output(): string }) =>
  proc.output().includes("Ready to accept connections");

/**
 * Starts a throwaway Redis (no persistence), optionally with `requirepass`, and optionally
 * TLS-only (`tls`: the URL is then `rediss://`; clients must trust `caFile`).
 */
export async function startRedis(
  opts: { password?: string; dir?: string; tls?: RedisTlsFiles } = {},
): Promise<RunningService> {
  const { password, tls } = opts;
  const auth = password === undefined ? "" : `:${encodeURIComponent(password)}@`;
  return startService({
    name: "redis-server",
    dir: opts.dir,
    portCount: 1,
    url: ([port]) => `${tls ? "rediss" : "redis"}://${auth}${LOOPBACK}:${port}`,
    command: ([port], dir) => ({
      args: [
        ...(tls
          ? [
              "--port",
              "0",
              "--tls-port",
              String(port),
              "--tls-cert-file",
              tls.certFile,
              "--tls-key-file",
              tls.keyFile,
              "--tls-ca-cert-file",
              tls.caFile,
              "--tls-auth-clients",
              "no",
            ]
          : ["--port", String(port)]),
        ...throwawayRedisArgs(dir),
        ...(password === undefined ? [] : ["--requirepass", password]),
      ],
    }),
    ready: redisReady,
  });
}

/** Whether `port` on the loopback address can be bound right now. */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, LOOPBACK, () => s.close(() => resolve(true)));
  });
}

/**
 * A port for a cluster node: below 55536, with its cluster bus port (port + 10000) free too.
 * Ephemeral ports (above 32768 here) would often push the bus port past 65535.
 */
async function clusterNodePort(): Promise<number[]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if ((await canListen(port)) && (await canListen(port + 10_000))) return [port];
  }
  throw new ServiceStartError(
    "redis-server",
    "no free port pair (port, port + 10000) for a cluster node",
    "",
  );
}

export interface RunningCluster {
  /** `redis://127.0.0.1:<first node>`: any node is an entry point for a cluster client. */
  readonly url: string;
  readonly nodes: readonly RunningService[];
  stop(): Promise<void>;
}

/**
 * Starts a throwaway Redis Cluster of `primaries` nodes (no replicas) on free loopback ports
 * below 55536, joined by `redis-cli --cluster create`, and waits until every node reports
 * `cluster_state:ok`.
 */
export async function startRedisCluster(
  opts: { primaries?: number } = {},
): Promise<RunningCluster> {
  const count = opts.primaries ?? 3;
  const nodes: RunningService[] = [];
  const stop = async () => {
    await Promise.allSettled(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < count; i++) {
      nodes.push(
        await startService({
          name: "redis-server",
          dir: undefined,
          portCount: 1,
          pickPorts: clusterNodePort,
          url: ([port]) => `redis://${LOOPBACK}:${port}`,
          command: ([port], dir) => ({
            args: [
              "--port",
              String(port),
              ...throwawayRedisArgs(dir),
              "--cluster-enabled",
              "yes",
              "--cluster-config-file",
              path.join(dir, "nodes.conf"),
              "--cluster-node-timeout",
              "5000",
            ],
          }),
          ready: redisReady,
        }),
      );
    }
    const addresses = nodes.map((n) => `${LOOPBACK}:${n.port}`);
    await new Promise<void>((resolve, reject) => {
      const cli = spawn(
        findBinary("redis-cli"),
        ["--cluster", "create", ...addresses, "--cluster-replicas", "0", "--cluster-yes"],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      cli.stdout?.on("data", (c: Buffer) => {
        out += c.toString();
      });
      cli.stderr?.on("data", (c: Buffer) => {
        out += c.toString();
      });
      cli.once("error", reject);
      cli.once("exit", (code) =>
        code === 0
          ? resolve()
          : reject(
              new ServiceStartError(
                "redis cluster",
                "redis-cli --cluster create failed",
                out.slice(-500),
              ),
            ),
      );
    });
    const deadline = Date.now() + 30_000;
    for (const node of nodes) {
      for (;;) {
        if (await clusterOk(node.port)) break;
        if (Date.now() > deadline)
          throw new ServiceStartError(
            "redis cluster",
            `node ${node.port} never reported cluster_state:ok`,
            "",
          );
        await sleep(POLL_MS);
      }
    }
    return { url: `redis://${LOOPBACK}:${nodes[0]?.port}`, nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** `CLUSTER INFO` says ok, over a raw RESP exchange (no client library in this module). */
function clusterOk(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.createConnection({ host: LOOPBACK, port });
    let reply = "";
    socket.setTimeout(1000, () => socket.destroy());
    socket.once("connect", () => socket.write("*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n"));
    socket.on("data", (c: Buffer) => {
      reply += c.toString();
      if (reply.includes("cluster_state:")) {
        socket.destroy();
        resolve(reply.includes("cluster_state:ok"));
      }
    });
    socket.once("error", () => resolve(false));
    socket.once("close", () => resolve(reply.includes("cluster_state:ok")));
  });
}

/**
 * Starts a throwaway VictoriaMetrics: the InfluxDB v2 write API is at `${url}/api/v2/write`
 * (token, org and bucket are ignored); read back with `test/readback.ts`.
 */
export async function startVictoriaMetrics(opts: { dir?: string } = {}): Promise<RunningService> {
  return startService({
    name: "victoria-metrics",
    dir: opts.dir,
    portCount: 1,
    url: ([port]) => `http://${LOOPBACK}:${port}`,
    command: ([port], dir) => ({
      args: [
        `-storageDataPath=${dir}`,
        `-httpListenAddr=${LOOPBACK}:${port}`,
        // Without it, points older than a month (replayed fixtures) are silently dropped.
        "-retentionPeriod=100y",
        // Otherwise the newest 30 s of samples are hidden from queries.
        "-search.latencyOffset=0s",
        "-loggerLevel=WARN",
      ],
    }),
    ready: (_proc, [port]) => httpOk(`http://${LOOPBACK}:${port}/health`, 200),
  });
}

/**
 * Starts a throwaway InfluxDB 1.x (v1 API: `/write?db=`, `/query`); creates `database` when
 * given. Its RPC (backup) port is a second free port, also kept across restarts.
 */
export async function startInfluxDB1(
  opts: {
    dir?: string;
    database?: string;
    /** `max-values-per-tag` (InfluxDB's default: 100,000): new tag values past it are refused. */
    maxValuesPerTag?: number;
  } = {},
): Promise<RunningService> {
  const service = await startService({
    name: "influxd",
    dir: opts.dir,
    portCount: 2,
    url: ([port]) => `http://${LOOPBACK}:${port}`,
    command: ([httpPort, rpcPort], dir) => ({
      args: ["run", "-config", "/dev/null"],
      env: {
        INFLUXDB_META_DIR: path.join(dir, "meta"),
        INFLUXDB_DATA_DIR: path.join(dir, "data"),
        INFLUXDB_DATA_WAL_DIR: path.join(dir, "wal"),
        INFLUXDB_HTTP_BIND_ADDRESS: `${LOOPBACK}:${httpPort}`,
        INFLUXDB_BIND_ADDRESS: `${LOOPBACK}:${rpcPort}`,
        INFLUXDB_REPORTING_DISABLED: "true",
        INFLUXDB_MONITOR_STORE_ENABLED: "false",
        // One log line per request would flood the pipe under load and bury start-up errors.
        INFLUXDB_HTTP_LOG_ENABLED: "false",
        INFLUXDB_DATA_QUERY_LOG_ENABLED: "false",
        ...(opts.maxValuesPerTag === undefined
          ? {}
          : { INFLUXDB_DATA_MAX_VALUES_PER_TAG: String(opts.maxValuesPerTag) }),
      },
    }),
    ready: (_proc, [port]) => httpOk(`http://${LOOPBACK}:${port}/ping`, 204),
  });
  if (opts.database !== undefined) {
    try {
      const q = `CREATE DATABASE "${opts.database.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`;
      const res = await fetch(`${service.url}/query`, {
        method: "POST",
        body: new URLSearchParams({ q }),
      });
      const body = await res.text();
      if (!res.ok || body.includes('"error"')) {
        throw new Error(`CREATE DATABASE ${opts.database} answered ${res.status}: ${body}`);
      }
    } catch (err) {
      await service.stop();
      throw err;
    }
  }
  return service;
}

interface ServiceSpec {
  name: string;
  dir: string | undefined;
  portCount: number;
  /** Picks the ports (default: any free ones). */
  pickPorts?: (count: number) => Promise<number[]>;
  url(ports: number[]): string;
  command(ports: number[], dir: string): { args: string[]; env?: Record<string, string> };
  ready(proc: ServerProcess, ports: number[]): Promise<boolean>;
}

async function startService(spec: ServiceSpec): Promise<RunningService> {
  const binary = findBinary(spec.name);
  const ownsDir = spec.dir === undefined;
  const dir = spec.dir ?? (await mkdtemp(path.join(os.tmpdir(), `waf-${spec.name}-`)));
  installExitHandler();
  try {
    for (let attempt = 1; ; attempt++) {
      const ports = await (spec.pickPorts ?? freePorts)(spec.portCount);
      const service = new ManagedService(spec, binary, ports, dir, ownsDir);
      // Registered before it runs, so an exit during start-up kills it too.
      services.add(service);
      try {
        await service.up();
        return service;
      } catch (err) {
        services.delete(service);
        if (!(err instanceof PortInUseError) || attempt >= PORT_ATTEMPTS) throw err;
      }
    }
  } catch (err) {
    if (ownsDir) await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

class PortInUseError extends ServiceStartError {}

class ManagedService implements RunningService {
  readonly url: string;
  readonly port: number;
  private proc: ServerProcess | undefined;
  private stopped = false;
  /** Lifecycle calls run one at a time, so a `stop()` during `up()` cannot leave a stray server. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly spec: ServiceSpec,
    private readonly binary: string,
    private readonly ports: number[],
    readonly dir: string,
    private readonly ownsDir: boolean,
  ) {
    this.url = spec.url(ports);
    this.port = ports[0] as number;
  }

  get pid(): number | undefined {
    return this.proc?.running ? this.proc.child.pid : undefined;
  }

  stop(): Promise<void> {
    return this.serial(async () => {
      if (this.stopped) return;
      this.stopped = true;
      await this.proc?.stop("SIGTERM");
      this.proc = undefined;
      // Only now: should this process exit mid-stop, the exit handler must still kill the server.
      services.delete(this);
      if (this.ownsDir) await rm(this.dir, { recursive: true, force: true });
    });
  }

  restart(): Promise<void> {
    return this.serial(async () => {
      await this.downNow("SIGTERM");
      await this.upNow();
    });
  }

  down(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    return this.serial(() => this.downNow(signal));
  }

  up(): Promise<void> {
    return this.serial(() => this.upNow());
  }

  /** For the exit handler: nothing asynchronous runs after `exit`. */
  killSync(): void {
    this.proc?.killSync();
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true, maxRetries: 2 });
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const result = this.queue.then(op);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async downNow(signal: NodeJS.Signals): Promise<void> {
    this.assertNotStopped();
    await this.proc?.stop(signal);
    this.proc = undefined;
  }

  private async upNow(): Promise<void> {
    this.assertNotStopped();
    if (this.proc?.running) return;
    const { args, env } = this.spec.command(this.ports, this.dir);
    const proc = new ServerProcess(this.binary, args, env, this.ownsDir ? this.dir : undefined);
    this.proc = proc;
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let reason = `not ready after ${READY_TIMEOUT_MS} ms`;
    let cause: unknown;
    while (Date.now() < deadline) {
      if (!proc.running) {
        reason = proc.exitReason();
        cause = proc.spawnError;
        break;
      }
      try {
        // Re-check liveness: a probe could have been answered by someone else holding the port.
        if ((await this.spec.ready(proc, this.ports)) && proc.running) {
          proc.detach();
          return;
        }
      } catch {
        // Not listening yet.
      }
      await sleep(POLL_MS);
    }
    await proc.stop("SIGKILL");
    this.proc = undefined;
    if (cause && (cause as NodeJS.ErrnoException).code === "ENOENT") {
      throw new MissingBinaryError(this.spec.name, { cause });
    }
    const output = proc.output();
    const where = `${LOOPBACK}:${this.ports.join(",")}`;
    const ErrorType = /address already in use/i.test(output) ? PortInUseError : ServiceStartError;
    throw new ErrorType(this.spec.name, `${reason} (on ${where}, dir ${this.dir})`, output, {
      cause,
    });
  }

  private assertNotStopped(): void {
    if (this.stopped)
      throw new Error(`${this.spec.name} on port ${this.port} was stopped for good`);
  }
}

/** One run of a server binary: its output tail, its exit, and its watchdog. */
class ServerProcess {
  readonly child: ChildProcess;
  spawnError: Error | undefined;
  private exitCode: number | null = null;
  private exitSignal: NodeJS.Signals | null = null;
  private exited = false;
  private readonly exitPromise: Promise<void>;
  private tail = "";
  private readonly watchdog: ChildProcess | undefined;

  constructor(
    binary: string,
    args: string[],
    env: Record<string, string> | undefined,
    tempDir: string | undefined,
  ) {
    this.child = spawn(binary, args, {
      env: { ...inheritedEnv(), ...env },
      // stdin ignored: no server must ever wait for a terminal.
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: a Ctrl-C in the terminal (SIGINT to the foreground group) must
      // not stop the server before the pipeline using it has drained. We stop it ourselves.
      detached: true,
    });
    this.exitPromise = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        this.exited = true;
        this.watchdog?.kill("SIGKILL");
        resolve();
      });
      // A failed spawn emits 'error' and never 'exit'.
      this.child.once("error", (err) => {
        this.spawnError = err;
        if (this.child.pid === undefined) {
          this.exited = true;
          resolve();
        }
      });
    });
    // Keep draining: a server blocks once a pipe nobody reads is full.
    const keep = (chunk: Buffer) => {
      this.tail = (this.tail + chunk.toString("utf8")).slice(-OUTPUT_TAIL_CHARS);
    };
    this.child.stdout?.on("data", keep);
    this.child.stderr?.on("data", keep);
    if (this.child.pid !== undefined) this.watchdog = spawnWatchdog(this.child.pid, tempDir);
  }

  get running(): boolean {
    return !this.exited;
  }

  output(): string {
    return this.tail;
  }

  exitReason(): string {
    if (this.spawnError) return this.spawnError.message;
    return this.exitSignal ? `exited on ${this.exitSignal}` : `exited with code ${this.exitCode}`;
  }

  /** Once ready, the server must not keep this process alive on its own. */
  detach(): void {
    this.child.unref();
    for (const stream of [this.child.stdout, this.child.stderr])
      (stream as net.Socket | null)?.unref?.();
  }

  /** Signals the server and waits for Node to reap it; SIGKILL after the grace period. */
  async stop(signal: NodeJS.Signals): Promise<void> {
    if (this.exited) return;
    // Disarm the watchdog first: it must only fire when this process is gone.
    this.watchdog?.kill("SIGKILL");
    this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exitPromise.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), STOP_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.child.kill("SIGKILL");
      await this.exitPromise;
    }
  }

  killSync(): void {
    if (this.exited) return;
    this.watchdog?.kill("SIGKILL");
    this.child.kill("SIGKILL");
  }
}

/**
 * A `sh` that blocks reading a pipe only we hold open. When this process dies by any means, the
 * kernel closes the pipe, `read` returns, and the watchdog kills the server and removes its temp
 * dir. Detached, so a Ctrl-C meant for us does not take the watchdog down before the server.
 */
function spawnWatchdog(pid: number, tempDir: string | undefined): ChildProcess | undefined {
  const script =
    'read _; kill -9 "$1" 2>/dev/null; if [ -n "$2" ]; then sleep 0.2; rm -rf -- "$2"; fi';
  try {
    const watchdog = spawn("sh", ["-c", script, "waf-watchdog", String(pid), tempDir ?? ""], {
      stdio: ["pipe", "ignore", "ignore"],
      detached: true,
    });
    watchdog.on("error", () => {
      // Best effort: the exit handler still covers normal exits.
    });
    watchdog.unref();
    (watchdog.stdin as net.Socket | null)?.unref?.();
    watchdog.stdin?.on("error", () => undefined);
    return watchdog;
  } catch {
    return undefined;
  }
}

/** The parent's environment minus INFLUXDB_*: our own config vars (INFLUXDB_URL, …) would reach influxd. */
function inheritedEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("INFLUXDB_")) env[key] = value;
  }
  return env;
}

function findBinary(name: string): string {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this PATH entry.
    }
  }
  throw new MissingBinaryError(name);
}

async function httpOk(url: string, status: number): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
  await res.arrayBuffer();
  return res.status === status;
}
