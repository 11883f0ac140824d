#!/usr/bin/env node
// The `waf` command. Runs the built JavaScript (dist/, made by `npm ci` through `prepare`, see
// scripts/build.mjs) when it is fresh: every source file it was built from still has the size
// and mtime recorded in dist/cli.json. After a `git pull` (or any edit) it rebuilds first; if it
// cannot (no esbuild), it runs the TypeScript through tsx. It never runs stale code.
import { readFileSync, statSync } from "node:fs";

const root = new URL("../", import.meta.url);

/** The built entry point, if the build is fresh. */
function freshBuild() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(new URL("dist/cli.json", root), "utf8"));
  } catch {
    return undefined;
  }
  for (const [file, was] of Object.entries(manifest.inputs ?? {})) {
    try {
      const now = statSync(new URL(file, root));
      if (now.size !== was.size || now.mtimeMs !== was.mtimeMs) return undefined;
    } catch {
      return undefined;
    }
  }
  return new URL(`dist/${manifest.dir}/main.js`, root);
}

let entry = freshBuild();
if (!entry) {
  try {
    const { buildCli } = await import("../scripts/build.mjs");
    await buildCli();
    entry = freshBuild();
  } catch (err) {
    if (process.env.WAF_DEBUG) process.stderr.write(`waf: rebuild failed: ${err}\n`);
  }
}
let loaded = false;
if (entry) {
  try {
    await import(entry.href);
    loaded = true;
  } catch (err) {
    // Only a build removed under us (ERR_MODULE_NOT_FOUND before anything ran) falls through.
    if (err?.code !== "ERR_MODULE_NOT_FOUND") throw err;
  }
}
if (!loaded) {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../cli/main.ts");
}
