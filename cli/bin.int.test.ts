/**
 * The `waf` bin runs built JavaScript (scripts/build.mjs) and never stale code: a build whose
 * recorded sources no longer match the files on disk is rebuilt before anything runs.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
const MANIFEST = join(ROOT, "dist/cli.json");

function waf(...args: string[]): string {
  return execFileSync(process.execPath, [join(ROOT, "bin/waf.js"), ...args], {
    cwd: ROOT,
    encoding: "utf8",
  });
}

function manifest(): { dir: string; inputs: Record<string, { size: number; mtimeMs: number }> } {
  return JSON.parse(readFileSync(MANIFEST, "utf8"));
}

describe("bin/waf.js", () => {
  it("answers --help from a build that records every source file it came from", () => {
    expect(waf("--help")).toContain("usage: waf <command>");
    const m = manifest();
    expect(Object.keys(m.inputs)).toEqual(
      expect.arrayContaining(["cli/main.ts", "cli/run.ts", "core/config.ts", "package-lock.json"]),
    );
    expect(Object.keys(m.inputs).some((f) => f.includes("node_modules"))).toBe(false);
  });

  it("rebuilds when a source file differs from what the build recorded (a git pull)", () => {
    waf("--help");
    const before = manifest();
    // Pretend cli/run.ts changed since the build, without touching the file itself.
    const stale = structuredClone(before);
    (stale.inputs["cli/run.ts"] as { size: number }).size += 1;
    writeFileSync(MANIFEST, JSON.stringify(stale));
    expect(waf("--help")).toContain("usage: waf <command>");
    const after = manifest();
    expect(after.dir).not.toBe(before.dir);
    expect(after.inputs["cli/run.ts"]).toEqual(before.inputs["cli/run.ts"]);
  });
});
