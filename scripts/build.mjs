#!/usr/bin/env node
/**
 * Builds the JavaScript the project runs with plain `node` (runs at `npm ci` / `npm install`
 * through `prepare`, and by `bin/waf.js` when its build is stale):
 *
 * - dist/reader/main.mjs: the stream reader's production bundle, one self-contained ESM file
 *   (dependencies included) that the Fargate image copies and runs;
 * - dist/cli-<hash>/: the `waf` command, split per command so `waf --help` loads a few KiB,
 *   and dist/cli.json, its manifest: which directory, and the size and mtime of every source
 *   file it was built from, so the bin can tell a stale build after a `git pull`.
 *
 * Without esbuild (a production install without devDependencies) it builds nothing and says
 * so: the bin then runs the TypeScript through tsx.
 *
 *   node scripts/build.mjs            both
 *   node scripts/build.mjs reader     the reader bundle only
 *   node scripts/build.mjs cli        the `waf` command only
 */
import { createHash } from "node:crypto";
import {
  cpSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(root, "dist");

// ioredis and parts of the AWS SDK are CommonJS and call require() at run time.
const REQUIRE_SHIM =
  "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);";

async function esbuild() {
  try {
    return await import("esbuild");
  } catch {
    return undefined;
  }
}

/** Builds dist/reader/main.mjs. */
export async function buildReader() {
  const esb = await esbuild();
  if (!esb) throw new Error("esbuild is not installed (npm ci installs it)");
  const outdir = path.join(dist, "reader");
  mkdirSync(outdir, { recursive: true });
  const started = Date.now();
  const result = await esb.build({
    entryPoints: [path.join(root, "functions/reader/main.ts")],
    outfile: path.join(outdir, "main.mjs"),
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    sourcemap: "linked",
    minify: false,
    metafile: true,
    legalComments: "none",
    banner: { js: REQUIRE_SHIM },
    logLevel: "warning",
  });
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  return `dist/reader/main.mjs (${(bytes / 1024).toFixed(0)} KiB with map) in ${Date.now() - started} ms`;
}

/** The repository files an esbuild metafile says went into a build, with their size and mtime. */
function sourcesOf(metafile) {
  const inputs = {};
  for (const rel of Object.keys(metafile.inputs).sort()) {
    if (rel.includes("node_modules/")) continue;
    const s = statSync(path.join(root, rel));
    inputs[rel] = { size: s.size, mtimeMs: s.mtimeMs };
  }
  // Dependencies changed (npm ci after a pull): rebuild too.
  for (const rel of ["package.json", "package-lock.json"]) {
    try {
      const s = statSync(path.join(root, rel));
      inputs[rel] = { size: s.size, mtimeMs: s.mtimeMs };
    } catch {
      // Not there: nothing to compare.
    }
  }
  return inputs;
}

/**
 * Builds the `waf` command into a fresh dist/cli-<hash>/ and then points dist/cli.json at it
 * (a rename, so a concurrent `waf` sees the old build or the new one, never half of one).
 */
export async function buildCli() {
  const esb = await esbuild();
  if (!esb) throw new Error("esbuild is not installed (npm ci installs it)");
  const started = Date.now();
  const tmp = path.join(dist, `.cli-${process.pid}-${Date.now()}`);
  mkdirSync(dist, { recursive: true });
  const result = await esb.build({
    entryPoints: { main: path.join(root, "cli/main.ts") },
    outdir: tmp,
    bundle: true,
    splitting: true,
    platform: "node",
    target: "node20",
    format: "esm",
    packages: "bundle",
    // Never bundled: the browser driver of the live-view test, and esbuild itself.
    external: ["playwright-core", "esbuild"],
    metafile: true,
    legalComments: "none",
    banner: { js: REQUIRE_SHIM },
    logLevel: "warning",
  });
  // The live view's page: read at run time next to the module that serves it.
  const staticSrc = path.join(root, "local/web/static");
  cpSync(staticSrc, path.join(tmp, "static"), { recursive: true });
  const inputs = sourcesOf(result.metafile);
  for (const name of readdirSync(staticSrc).sort()) {
    const s = statSync(path.join(staticSrc, name));
    inputs[`local/web/static/${name}`] = { size: s.size, mtimeMs: s.mtimeMs };
  }
  const hash = createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 8);
  // Unique per build: a `waf` started a moment ago may still be loading the previous one.
  const dir = `cli-${hash}-${Date.now().toString(36)}-${process.pid}`;
  renameSync(tmp, path.join(dist, dir));
  const manifest = path.join(dist, "cli.json");
  writeFileSync(`${manifest}.${process.pid}`, `${JSON.stringify({ dir, inputs }, null, 1)}\n`);
  renameSync(`${manifest}.${process.pid}`, manifest);
  // Older builds, once no `waf` can still be starting from them: best effort.
  for (const name of readdirSync(dist)) {
    const old = path.join(dist, name);
    if (!/^(cli-|\.cli-)/.test(name) || name === dir) continue;
    try {
      if (Date.now() - statSync(old).mtimeMs > 10 * 60_000)
        rmSync(old, { recursive: true, force: true });
    } catch {
      // Removed by another build meanwhile.
    }
  }
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  return `dist/${dir}/ (${(bytes / 1024).toFixed(0)} KiB) in ${Date.now() - started} ms`;
}

const invoked = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invoked) {
  const what = process.argv[2] ?? "all";
  if (!(await esbuild())) {
    process.stderr.write("build: esbuild is not installed; `waf` will run through tsx\n");
    process.exit(0);
  }
  if (what === "all" || what === "reader") process.stderr.write(`build: ${await buildReader()}\n`);
  if (what === "all" || what === "cli") process.stderr.write(`build: ${await buildCli()}\n`);
}
