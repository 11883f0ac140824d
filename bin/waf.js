#!/usr/bin/env node
// The `waf` command. Runs the TypeScript sources through tsx's loader, so the command is
// usable right after `npm ci` with no build step.
import { register } from "tsx/esm/api";

register();
await import("../cli/main.ts");
