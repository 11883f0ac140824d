#!/usr/bin/env node
/**
 * Builds the stream reader's production bundle: dist/reader/main.mjs, one self-contained ESM
 * file (dependencies included) that the Fargate image copies and runs with plain `node`.
 */
import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outdir = path.join(root, "dist/reader");
mkdirSync(outdir, { recursive: true });

const started = Date.now();
const result = await build({
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
  // ioredis and parts of the AWS SDK are CommonJS and call require() at run time.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: "warning",
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
process.stderr.write(
  `build-reader: dist/reader/main.mjs (${(bytes / 1024).toFixed(0)} KiB with map) in ${Date.now() - started} ms\n`,
);
