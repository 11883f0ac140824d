/**
 * The documentation of configuration cannot drift from the schema: every variable the schema
 * reads is in the README's table and in docs/reference.md §6, and neither names a variable
 * the schema does not read.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { configSchema } from "./config.ts";

const ROOT = join(import.meta.dirname, "..");
const schemaVars = Object.keys(configSchema.shape).sort();

/** Variables named in the first column of a markdown table, within `section`. */
function documented(file: string, from: string, to: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const start = text.indexOf(from);
  const end = text.indexOf(to, start + from.length);
  const section = text.slice(start, end === -1 ? undefined : end);
  const names = new Set<string>();
  for (const line of section.split("\n")) {
    const first = /^\|\s*([^|]+)\|/.exec(line)?.[1] ?? "";
    for (const m of first.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(m[1] as string);
  }
  return [...names].sort();
}

/** Variables of the local tooling, documented but not read by the schema. */
const TOOLING_ONLY = ["WAF_LOG_DIR"];

describe.each([
  ["README.md", "## Configuration", "\n## "],
  ["docs/reference.md", "## §6 Configuration", "\n## "],
])("%s", (file, from, to) => {
  const names = documented(file, from, to);
  it("documents every variable the config schema reads", () => {
    expect(schemaVars.filter((v) => !names.includes(v))).toEqual([]);
  });
  it("documents no variable the config schema does not read", () => {
    expect(names.filter((v) => !schemaVars.includes(v) && !TOOLING_ONLY.includes(v))).toEqual([]);
  });
});
