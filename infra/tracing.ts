/**
 * Owns: X-Ray active tracing of the functions (the Lambda `tracingConfig` SST has no argument
 * for, set through each Function's `transform`) and the two permissions it needs.
 * Lambda's default sampling applies: the first invocation each second and 5% of the rest; with
 * batches of 80 records, about one trace per 1,600 records (its cost: infra/capacity.ts).
 * Differs by stage: `tracing` in stages.ts (on for every built-in stage).
 */
import { settings } from "./settings.ts";

export const activeTracing = settings.tracing ? { tracingConfig: { mode: "Active" } } : {};

export const tracingPermissions = settings.tracing
  ? [{ actions: ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources: ["*"] }]
  : [];
