/**
 * The dependency rules of docs/architecture.md, checked on the import graph (not file by file):
 * a pure module is pure only if everything it reaches at run time is.
 *
 * - The pure core (formats, scoring, privacy, alert and point shapes, the delivery policy, the
 *   stream contract, config, the pure primitives) reaches no I/O client (ioredis, InfluxDB
 *   client, AWS SDK, SST, Powertools, Middy), no Node I/O module, and none of the files it
 *   reaches reads `process.env` or the clock.
 * - core/ never imports the composition roots (functions/, local/, cli/) or infra/.
 * - infra/ imports nothing from core/ or functions/ (handlers are referenced by path).
 * - functions/ never imports local/ or cli/ (what runs on AWS does not depend on the laptop).
 *
 * Type-only imports (`import type …`) are erased at build time and do not count.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Entry points of the pure core: everything they reach must be pure too. */
const PURE_ROOTS = [
  "core/event",
  "core/scoring",
  "core/privacy",
  "core/alert/alert.ts",
  "core/alert/alert-queue.ts",
  "core/alert/notification.ts",
  "core/alert/campaign.ts",
  "core/alert/keys.ts",
  "core/metrics/point.ts",
  "core/metrics/line-protocol.ts",
  "core/stream/policy.ts",
  "core/stream/entry.ts",
  "core/stream/contract.ts",
  "core/stream/keys.ts",
  "core/scorer.ts",
  "core/config.ts",
  "core/lib/backoff.ts",
  "core/lib/fields.ts",
  "core/lib/retry-after.ts",
  "core/lib/logger.ts",
  // The shipper's decisions; its file-system and Redis adapters sit beside them.
  "core/ship/lines.ts",
  "core/ship/glob.ts",
  "core/ship/checkpoint.ts",
  "core/ship/plan.ts",
  "core/ship/batch.ts",
];

/** Packages and Node modules the pure core must never reach. */
const IMPURE_PACKAGE =
  /^(ioredis|@influxdata\/|@aws-sdk\/|sst($|\/)|@aws-lambda-powertools\/|@middy\/|node:(fs|net|http|https|child_process|os|dgram|dns|tls|worker_threads|cluster|process)$)/;
/** Reads of the environment or the clock, in a pure file's source. */
const IMPURE_SOURCE = /\bprocess\.env\b|\bDate\.now\(|\bnew Date\(\s*\)|\bperformance\.now\(/;

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === "node_modules" || name.startsWith(".")) return [];
    if (statSync(path).isDirectory()) return walk(path);
    return /\.ts$/.test(name) && !/\.test\.ts$/.test(name) && !name.endsWith(".d.ts") ? [path] : [];
  });
}

/** Runtime imports of a file: module specifiers of value imports, re-exports and import(). */
function importsOf(source: string): string[] {
  const out: string[] = [];
  const statement = /^\s*(import|export)\s+(type\s+)?([^;]*?)\s*from\s*["']([^"']+)["']/gms;
  for (const m of source.matchAll(statement)) {
    if (m[2]) continue; // import type … / export type …
    out.push(m[4] as string);
  }
  for (const m of source.matchAll(/^\s*import\s+["']([^"']+)["']/gm)) out.push(m[1] as string);
  for (const m of source.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1] as string);
  return out;
}

interface Graph {
  /** file (relative) → resolved relative files and bare package specifiers it imports */
  edges: Map<string, { files: string[]; packages: string[] }>;
  source: Map<string, string>;
}

function buildGraph(): Graph {
  const edges: Graph["edges"] = new Map();
  const source: Graph["source"] = new Map();
  for (const top of ["core", "functions", "local", "cli", "infra", "bench"]) {
    for (const file of walk(join(ROOT, top))) {
      const rel = relative(ROOT, file);
      const text = readFileSync(file, "utf8");
      source.set(rel, text);
      const files: string[] = [];
      const packages: string[] = [];
      for (const spec of importsOf(text)) {
        if (spec.startsWith(".")) files.push(relative(ROOT, resolve(dirname(file), spec)));
        else packages.push(spec);
      }
      edges.set(rel, { files, packages });
    }
  }
  return { edges, source };
}

const graph = buildGraph();

/** Every file reachable from `start` at run time, with the path that reaches it. */
function reach(start: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[start, [start]]]);
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift() as string;
    for (const next of graph.edges.get(file)?.files ?? []) {
      if (seen.has(next)) continue;
      seen.set(next, [...(seen.get(file) ?? []), next]);
      queue.push(next);
    }
  }
  return seen;
}

function pureFiles(): string[] {
  return [...graph.edges.keys()].filter((f) =>
    PURE_ROOTS.some((root) => f === root || f.startsWith(`${root}/`)),
  );
}

describe("architecture: the import graph", () => {
  it("finds the files it checks", () => {
    expect(graph.edges.size).toBeGreaterThan(80);
    expect(pureFiles().length).toBeGreaterThan(20);
  });

  it("keeps the pure core away from I/O clients, the environment and the clock, transitively", () => {
    const violations: string[] = [];
    for (const root of pureFiles()) {
      for (const [file, path] of reach(root)) {
        const e = graph.edges.get(file);
        if (!e) {
          violations.push(`${path.join(" → ")}: not a source file of the repository`);
          continue;
        }
        for (const pkg of e.packages) {
          if (IMPURE_PACKAGE.test(pkg)) violations.push(`${path.join(" → ")} imports ${pkg}`);
        }
        const m = IMPURE_SOURCE.exec(graph.source.get(file) ?? "");
        if (m) violations.push(`${path.join(" → ")} uses ${m[0]}`);
      }
    }
    expect([...new Set(violations)]).toEqual([]);
  });

  it("keeps core/ from importing functions/, local/, cli/ or infra/", () => {
    const bad = [...graph.edges]
      .filter(([f]) => f.startsWith("core/"))
      .flatMap(([f, e]) =>
        e.files.filter((t) => /^(functions|local|cli|infra)\//.test(t)).map((t) => `${f} → ${t}`),
      );
    expect(bad).toEqual([]);
  });

  it("keeps infra/ from importing core/ or functions/", () => {
    const bad = [...graph.edges]
      .filter(([f]) => f.startsWith("infra/"))
      .flatMap(([f, e]) =>
        e.files.filter((t) => /^(core|functions)\//.test(t)).map((t) => `${f} → ${t}`),
      );
    expect(bad).toEqual([]);
  });

  it("keeps functions/ (what runs on AWS) from importing local/ or cli/", () => {
    const bad = [...graph.edges]
      .filter(([f]) => f.startsWith("functions/"))
      .flatMap(([f, e]) =>
        e.files.filter((t) => /^(local|cli)\//.test(t)).map((t) => `${f} → ${t}`),
      );
    expect(bad).toEqual([]);
  });
});
