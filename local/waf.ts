/**
 * A real WAF on this machine: Debian's nginx + libnginx-mod-http-modsecurity + libmodsecurity3
 * + modsecurity-crs (OWASP CRS 3.3.4), on free 127.0.0.1 ports with configs rendered from
 * local/waf/*.in into a directory of its own, and `waf ship` on its audit log. Used by
 * `npm start -- --waf` / `--demo` and by the integration tests (reference §7, §8).
 *
 * nginx runs in the foreground as our child, in its own process group, and is stopped by its
 * pid. Debian's own nginx service (port 80, started by the package) is never used.
 */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import {
  accessSync,
  chownSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import type net from "node:net";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sleep } from "../core/lib/time.ts";
import { freePort } from "./services.ts";
import { demoTraffic, sendRaw } from "./waf/traffic.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const TEMPLATES = join(ROOT, "local/waf");
const MODULE = "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so";
const CRS_SETUP = "/etc/modsecurity/crs/crs-setup.conf";
const CRS_RULES = "/usr/share/modsecurity-crs/rules";
const READY_TIMEOUT_MS = 20_000;

export interface WafOptions {
  /** Where configs, logs and the audit log go (created; emptied first). */
  dir: string;
  /** `SecRuleEngine`: `On` (blocking, the default) or `DetectionOnly`. */
  engine?: "On" | "DetectionOnly";
  /** CRS paranoia level (default 1). */
  paranoia?: 1 | 2 | 3 | 4;
}

export interface RunningWaf {
  /** `http://127.0.0.1:PORT`: the WAF (the site is behind it). */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** The Serial JSON audit log ModSecurity writes. */
  readonly auditLog: string;
  /** nginx master's pid while it runs. */
  readonly pid: number | undefined;
  /** Stops nginx (by pid; its workers go with it). Idempotent. */
  stop(): Promise<void>;
}

/** nginx, the ModSecurity module or the CRS is not installed. */
export class WafMissingError extends Error {
  override readonly name = "WafMissingError";
}

function onPath(binary: string): string | undefined {
  for (const d of [...(process.env.PATH ?? "").split(delimiter), "/usr/sbin", "/sbin"]) {
    if (!d) continue;
    try {
      accessSync(join(d, binary), constants.X_OK);
      return join(d, binary);
    } catch {
      // not here
    }
  }
  return undefined;
}

function render(template: string, values: Record<string, string>): string {
  return readFileSync(join(TEMPLATES, template), "utf8").replace(/@([A-Z_]+)@/g, (m, name) =>
    name in values ? (values[name] as string) : m,
  );
}

/** Whether every directory above `dir` lets other users through (nginx's workers, www-data). */
function traversableByOthers(dir: string): boolean {
  for (let d = resolve(dir); ; d = dirname(d)) {
    try {
      if ((statSync(d).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    if (dirname(d) === d) return true;
  }
}

/** Two distinct ports that were free a moment ago. */
async function twoPorts(): Promise<[number, number]> {
  const a = await freePort();
  let b = await freePort();
  while (b === a) b = await freePort();
  return [a, b];
}

/**
 * A request that CRS finds nothing wrong with (a numeric Host alone is rule 920350), so
 * readiness probes leave no audit record behind.
 */
const PROBE = Buffer.from(
  "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: waf-local-probe\r\nAccept: text/html\r\n\r\n",
);

/** Whether the WAF answers with the site behind it. */
async function answers(port: number): Promise<boolean> {
  return (await sendRaw(port, PROBE, 1_000)) === 200;
}

function tail(file: string, chars = 3000): string {
  try {
    return readFileSync(file, "utf8").slice(-chars);
  } catch {
    return "";
  }
}

/** Running nginx masters of this process, for the exit handler. */
const running = new Set<ChildProcess>();
let exitHook = false;
function hookExit(): void {
  if (exitHook) return;
  exitHook = true;
  // Synchronous only: the master stops its workers on SIGTERM.
  process.on("exit", () => {
    for (const child of running) if (child.pid) killGroup(child.pid, "SIGTERM");
  });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * A `sh` that waits on a pipe only this process holds: when this process dies in a way no
 * handler sees (SIGKILL), the pipe closes and nginx's process group is killed, so no orphaned
 * worker keeps a port.
 */
function watchdog(pid: number): void {
  try {
    const w = spawn(
      "sh",
      ["-c", 'read _; kill -TERM -- "-$1" 2>/dev/null', "waf-nginx-watchdog", String(pid)],
      {
        stdio: ["pipe", "ignore", "ignore"],
        detached: true,
      },
    );
    w.on("error", () => undefined);
    w.unref();
    (w.stdin as net.Socket | null)?.unref?.();
    w.stdin?.on("error", () => undefined);
  } catch {
    // best effort: the exit handler covers normal exits
  }
}

/**
 * Starts nginx + ModSecurity v3 + CRS on free loopback ports, with its configs rendered into
 * `opts.dir`. Resolves once it answers HTTP.
 *
 * @example
 * const waf = await startWaf({ dir: ".tmp/waf" });
 * await fetch(`${waf.url}/?id=1%27%20OR%201=1--`); // 403, one line in waf.auditLog
 * await waf.stop();
 */
export async function startWaf(opts: WafOptions): Promise<RunningWaf> {
  const nginx = onPath("nginx");
  const missing = [
    nginx ? "" : "nginx",
    existsSync(MODULE) ? "" : "libnginx-mod-http-modsecurity",
    existsSync(CRS_SETUP) && existsSync(CRS_RULES) ? "" : "modsecurity-crs",
  ].filter(Boolean);
  if (!nginx || missing.length > 0)
    throw new WafMissingError(
      `not installed: ${missing.join(", ")}. Run \`node scripts/ensure-deps.mjs\` (or apt-get install nginx libnginx-mod-http-modsecurity modsecurity-crs).`,
    );
  const dir = resolve(opts.dir);
  rmSync(dir, { recursive: true, force: true });
  for (const d of [
    "www",
    "tmp/client_body",
    "tmp/proxy",
    "tmp/fastcgi",
    "tmp/uwsgi",
    "tmp/scgi",
    "tmp/modsec",
  ])
    mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(join(TEMPLATES, "index.html"), join(dir, "www/index.html"));
  const auditLog = join(dir, "audit.log");
  const conf = join(dir, "nginx.conf");
  // As root, nginx's workers drop to www-data; they must reach the directory.
  const isRoot = process.getuid?.() === 0;
  const asWwwData = isRoot && traversableByOthers(dir);
  const user = isRoot
    ? asWwwData
      ? "user www-data;"
      : "user root; # the checkout is not reachable by www-data"
    : "";

  for (let attempt = 1; ; attempt++) {
    const [port, backendPort] = await twoPorts();
    const values = {
      DIR: dir,
      PORT: String(port),
      BACKEND_PORT: String(backendPort),
      ENGINE: opts.engine ?? "On",
      PL: String(opts.paranoia ?? 1),
      AUDIT_LOG: auditLog,
      USER: user,
    };
    writeFileSync(conf, render("nginx.conf.in", values));
    writeFileSync(join(dir, "modsecurity.conf"), render("modsecurity.conf.in", values));
    writeFileSync(join(dir, "modsec-main.conf"), render("modsec-main.conf.in", values));
    writeFileSync(
      join(dir, "crs-setup.conf"),
      readFileSync(CRS_SETUP, "utf8") + render("crs-setup-tail.conf.in", values),
    );
    writeFileSync(auditLog, "", { flag: "a" });
    if (asWwwData) chownTree(dir, "www-data");
    const errorLog = join(dir, "error.log");
    try {
      execFileSync(nginx, ["-t", "-q", "-c", conf, "-p", `${dir}/`, "-e", errorLog], {
        stdio: "pipe",
      });
    } catch (err) {
      const out = `${(err as { stderr?: Buffer }).stderr?.toString() ?? ""}`;
      throw new Error(`nginx refused its configuration ${conf}:\n${out}${tail(errorLog)}`);
    }
    hookExit();
    const child = spawn(nginx, ["-c", conf, "-p", `${dir}/`, "-e", errorLog], {
      stdio: ["ignore", "ignore", "pipe"],
      detached: true,
    });
    let stderr = "";
    child.stderr?.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    let exited = false;
    const exit = new Promise<void>((res) => {
      child.once("exit", () => {
        exited = true;
        running.delete(child);
        res();
      });
      child.once("error", () => {
        exited = true;
        res();
      });
    });
    running.add(child);
    if (child.pid) watchdog(child.pid);
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!exited && Date.now() < deadline && !(await answers(port))) await sleep(50);
    if (!exited && (await answers(port))) {
      child.unref();
      (child.stderr as net.Socket | null)?.unref?.();
      const stop = async () => {
        if (exited || !child.pid) return;
        killGroup(child.pid, "SIGTERM");
        const killed = await Promise.race([exit.then(() => true), sleep(5_000).then(() => false)]);
        if (!killed) {
          killGroup(child.pid, "SIGKILL");
          await exit;
        }
      };
      return {
        url: `http://127.0.0.1:${port}`,
        port,
        dir,
        auditLog,
        get pid() {
          return exited ? undefined : child.pid;
        },
        stop,
      };
    }
    if (child.pid && !exited) killGroup(child.pid, "SIGKILL");
    await exit;
    const why = `${stderr}${tail(errorLog)}`;
    if (/Address already in use/i.test(why) && attempt < 3) continue;
    throw new Error(`nginx did not come up on 127.0.0.1:${port} (see ${errorLog}):\n${why}`);
  }
}

function chownTree(dir: string, user: string): void {
  const uid = Number(execFileSync("id", ["-u", user]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", user]).toString().trim());
  const walk = (p: string) => {
    chownSync(p, uid, gid);
    if (statSync(p).isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
  };
  walk(dir);
}

export interface ShipProcess {
  readonly child: ChildProcess;
  /** Its `/healthz`, when SHIP_HEALTH_PORT was set. */
  readonly healthUrl: string | undefined;
  /** Signals it (SIGTERM: a clean stop) and waits for its exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `waf ship --state STATE PATH…` as a child process (the TypeScript through tsx, like
 * the other local processes), logging to `logFile`; resolves once it ships.
 */
export async function startShipProcess(o: {
  paths: string[];
  stateFile: string;
  env: Record<string, string | undefined>;
  logFile: string;
}): Promise<ShipProcess> {
  mkdirSync(dirname(o.logFile), { recursive: true });
  const log = openSync(o.logFile, "a");
  const child = fork(join(ROOT, "cli/main.ts"), ["ship", "--state", o.stateFile, ...o.paths], {
    cwd: ROOT,
    env: { ...process.env, ...o.env },
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", log, log, "ipc"],
    // Its own process group, like the other local processes: Ctrl-C reaches only `npm start`,
    // which stops it (SIGTERM); if `npm start` dies, the IPC channel closes and it stops itself.
    detached: true,
  });
  const exit = new Promise<number | null>((res) => {
    if (child.exitCode !== null) res(child.exitCode);
    child.once("exit", (code) => res(code));
  });
  const ready = await new Promise<{ healthUrl?: string }>((res, rej) => {
    child.once("exit", (code) =>
      rej(new Error(`waf ship exited with ${code} before it was ready (see ${o.logFile})`)),
    );
    child.on("message", (m: { ready?: boolean; healthUrl?: string }) => {
      if (m?.ready) res(m);
    });
  });
  return {
    child,
    healthUrl: ready.healthUrl,
    async stop(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      return exit;
    },
  };
}

/** What `npm start -- --waf` adds to the pipeline. */
export interface LocalWaf {
  readonly waf: RunningWaf;
  readonly shipper: ShipProcess;
  /** For the start-up summary: where nginx listens, what ships its log (two lines). */
  readonly summary: string;
  stop(): Promise<void>;
}

/**
 * `npm start -- --waf` (and `--demo`): the WAF, `waf ship` on its audit log into the pipeline's
 * Redis, and with `demo` real attack and benign requests through it (20/s). Stops by itself on
 * SIGINT/SIGTERM and when this process exits.
 */
export async function startLocalWaf(o: {
  redisUrl: string;
  env?: Record<string, string | undefined>;
  logDir: string;
  demo: boolean;
  dir?: string;
}): Promise<LocalWaf> {
  const dir = resolve(o.dir ?? join(ROOT, ".tmp/waf"));
  const waf = await startWaf({ dir: join(dir, "nginx") });
  let shipper: ShipProcess;
  try {
    shipper = await startShipProcess({
      paths: [`${waf.auditLog}*`],
      stateFile: join(dir, "ship.state.json"),
      env: { ...o.env, REDIS_URL: o.redisUrl },
      logFile: join(o.logDir, "ship.log"),
    });
  } catch (err) {
    await waf.stop();
    throw err;
  }
  const traffic = new AbortController();
  const demo = o.demo
    ? demoTraffic(waf.port, 20, traffic.signal).catch(() => undefined)
    : undefined;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      traffic.abort();
      await demo;
      await shipper.stop("SIGTERM");
      await waf.stop();
    })();
    return stopping;
  };
  process.once("SIGINT", () => void stop());
  process.once("SIGTERM", () => void stop());
  const attack = `curl -i "${waf.url}/?id=1%27%20OR%201=1--"`;
  return {
    waf,
    shipper,
    summary: [
      `  WAF         ${waf.url} (nginx + ModSecurity v3 + OWASP CRS 3.3.4; try: ${attack})`,
      `  waf ship    ${waf.auditLog} → stream (logs ${join(o.logDir, "ship.log")})${o.demo ? "; demo: real CRS attack and benign requests through the WAF, 20/s" : ""}`,
    ].join("\n"),
    stop,
  };
}
