#!/usr/bin/env node
/**
 * Makes a fresh Debian-like clone runnable: `npm ci` when node_modules is missing, and the apt
 * packages behind the local servers (reference §7, §8) when their binaries are not on PATH.
 * Runs first in `npm test` and `npm start`, so when everything is present it spawns nothing and
 * prints nothing. Plain Node, no dependencies: it must work before `npm ci`.
 *
 * Exit 0 when all is present afterwards; 1 with a message naming what is missing otherwise.
 */
import { spawn } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Binary the code runs → Debian package that ships it. */
const PACKAGES = {
  "redis-server": "redis-server",
  "victoria-metrics": "victoria-metrics",
  influxd: "influxdb",
  // The real WAF of `npm start -- --waf` and its tests (local/waf.ts). nginx lives in /usr/sbin.
  nginx: "nginx",
  // `--test` only: the browser of the live-view test, the TLS test's certificate tool, and
  // logrotate for the shipper's rotation test (with deploy/logrotate-modsecurity).
  ...(process.argv.includes("--test")
    ? { chromium: "chromium", openssl: "openssl", logrotate: "logrotate" }
    : {}),
};

/**
 * Files the code needs that are not binaries → their package: the ModSecurity module for nginx
 * (it pulls libmodsecurity3 in) and the OWASP CRS.
 */
const FILES = {
  "/usr/lib/nginx/modules/ngx_http_modsecurity_module.so": "libnginx-mod-http-modsecurity",
  "/usr/share/modsecurity-crs/rules": "modsecurity-crs",
  "/etc/modsecurity/crs/crs-setup.conf": "modsecurity-crs",
};

const log = (msg) => process.stderr.write(`ensure-deps: ${msg}\n`);

function onPath(binary) {
  for (const dir of [...(process.env.PATH ?? "").split(path.delimiter), "/usr/sbin", "/sbin"]) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, binary), constants.X_OK);
      return true;
    } catch {
      // Not in this PATH entry.
    }
  }
  return false;
}

/**
 * Runs a command with its output on our stderr (stdout stays clean for callers that parse it)
 * and resolves on the process's own exit, not on its pipes closing: a daemon started by a
 * package's postinst may inherit the pipes and hold them open for ever.
 */
function run(cmd, args, { env = process.env, stdio = "forward" } = {}) {
  log(`$ ${[cmd, ...args].join(" ")}`);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: root,
      env,
      stdio: stdio === "inherit" ? ["ignore", "inherit", "inherit"] : ["ignore", "pipe", "pipe"],
    });
    child.stdout?.on("data", (chunk) => process.stderr.write(chunk));
    child.stderr?.on("data", (chunk) => process.stderr.write(chunk));
    child.once("error", (err) => {
      log(`${cmd}: ${err.message}`);
      resolve(false);
    });
    child.once("exit", (code, signal) => {
      child.stdout?.destroy();
      child.stderr?.destroy();
      if (code !== 0) log(`${cmd} ${signal ? `killed by ${signal}` : `exited with ${code}`}`);
      resolve(code === 0);
    });
  });
}

async function ensureNodeModules() {
  if (existsSync(path.join(root, "node_modules"))) return true;
  log("node_modules is missing: running npm ci");
  // npm's own progress and prompts belong to the user's terminal.
  return run(process.platform === "win32" ? "npm.cmd" : "npm", ["ci"], { stdio: "inherit" });
}

/** What is missing: [binary or file, package] pairs. */
function missingItems() {
  return [
    ...Object.entries(PACKAGES).filter(([binary]) => !onPath(binary)),
    ...Object.entries(FILES).filter(([file]) => !existsSync(file)),
  ];
}

async function ensureSystemPackages() {
  const missing = missingItems();
  if (missing.length === 0) return true;
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  const binaries = missing.map(([binary]) => binary).join(", ");
  const manual = `apt-get install -y ${packages.join(" ")}`;
  log(`missing: ${binaries}`);

  const isRoot = process.getuid?.() === 0;
  const sudo = !isRoot && onPath("sudo");
  if (!onPath("apt-get") || (!isRoot && !sudo)) {
    log(
      `cannot install ${packages.join(", ")} here (${onPath("apt-get") ? "not root and no sudo" : "no apt-get"}). ` +
        `Install them as root (Debian/Ubuntu: \`${manual}\`), then run this again.`,
    );
    return false;
  }

  // `sudo -n` fails at once instead of asking for a password nobody will type.
  const prefix = sudo ? ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"] : [];
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const apt = (args) => {
    const [cmd, ...rest] = [...prefix, "apt-get", ...args];
    return run(cmd, rest, { env });
  };
  const install = () =>
    apt([
      "install",
      "-y",
      "--no-install-recommends",
      // Keep existing config files without asking: no prompt can be answered here.
      "-o",
      "Dpkg::Options::=--force-confdef",
      "-o",
      "Dpkg::Options::=--force-confold",
      ...packages,
    ]);

  // A fresh image has no package lists, a stale one points at removed files: update, then retry.
  let ok = await install();
  if (!ok) ok = (await apt(["update"])) && (await install());
  const still = missingItems().map(([item]) => item);
  if (!ok || still.length > 0) {
    log(
      `installing ${packages.join(", ")} failed${still.length ? ` (still missing: ${still.join(", ")})` : ""}. ` +
        `Try \`${sudo ? "sudo " : ""}${manual}\` by hand.`,
    );
    return false;
  }
  log(`installed ${packages.join(", ")}`);
  // Debian's nginx package may start its own service on port 80; nothing here uses it (the
  // local WAF runs its own nginx on free loopback ports), so it is left alone.
  return true;
}

const modulesOk = await ensureNodeModules();
const packagesOk = await ensureSystemPackages();
process.exitCode = modulesOk && packagesOk ? 0 : 1;
