#!/usr/bin/env node
// Type-checks sst.config.ts, infra/ and sst-env.d.ts against SST's real platform types
// (tsconfig.infra.json). SST's types exist only after `sst install`, which needs no AWS
// access: run it first when `.sst/platform/config.d.ts` is missing (~30 s, ~300 MB, git-ignored).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const platformTypes = join(root, ".sst", "platform", "config.d.ts");
const npx = process.platform === "win32" ? "npx.cmd" : "npx";

function run(args, env = process.env) {
  const started = Date.now();
  const result = spawnSync(npx, args, { cwd: root, env, stdio: "inherit" });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.error) throw result.error;
  return { status: result.status ?? 1, seconds };
}

if (!existsSync(platformTypes)) {
  console.error(
    "typecheck-infra: .sst/platform is missing, running `sst install` (offline flags)…",
  );
  const install = run(["--no-install", "sst", "install"], {
    ...process.env,
    SST_STAGE: process.env.SST_STAGE ?? "ci",
    // skip the Pulumi and Bun downloads and telemetry: only the platform's npm packages are needed
    SST_SKIP_DEPENDENCY_CHECK: "1",
    SST_NO_BUN: "1",
    SST_TELEMETRY_DISABLED: "1",
  });
  if (install.status !== 0 || !existsSync(platformTypes)) {
    console.error(`typecheck-infra: \`sst install\` failed (exit ${install.status}); see above.`);
    process.exit(install.status || 1);
  }
  console.error(`typecheck-infra: sst install done in ${install.seconds} s`);
}

const check = run(["--no-install", "tsc", "-p", "tsconfig.infra.json", "--noEmit"]);
if (check.status !== 0) {
  console.error("typecheck-infra: sst.config.ts / infra/ do not match SST's types (see above).");
  process.exit(check.status);
}
console.error(
  `typecheck-infra: infra type-checks against SST ${sstVersion()} (${check.seconds} s)`,
);

function sstVersion() {
  const file = join(root, ".sst", "platform", "version");
  return existsSync(file) ? readFileSync(file, "utf8").trim() : "platform";
}
