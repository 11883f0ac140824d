/**
 * The Lambda cost model: requests and GB-seconds per million records, from invocation
 * durations measured on this machine and the memory the stage configures, at list price.
 *
 * Prices: AWS Lambda on arm64 (Graviton), us-east-1, as listed in 2025: $0.20 per million
 * requests and $0.0000133334 per GB-second (first 7.5 billion GB-s a month), free tier ignored.
 * Billed duration is rounded up to the next millisecond, with 1 ms the minimum.
 */
import type { InvocationSample } from "./pipeline.ts";

export const PRICE_PER_REQUEST_USD = 0.2 / 1_000_000;
export const PRICE_PER_GB_S_USD = 0.0000133334;
export const PRICING =
  "AWS Lambda arm64, us-east-1 list prices (2025): $0.20 per 1M requests, $0.0000133334 per GB-s; free tier ignored";
/** Lambda gives a function one full vCPU at 1,769 MB, proportionally less below. */
export const FULL_VCPU_MB = 1769;

export interface CostInputs {
  scorerMemoryMb: number;
  alerterMemoryMb: number;
  /** Full batches, one invocation at a time. */
  batched: InvocationSample[];
  /** One record per invocation, one at a time. */
  singles: InvocationSample[];
  /** JSON.parse of a full batch's request body, ms: the runtime does it inside billed time. */
  batchBodyParseMs: number;
  /** Round trips of the alert function with a batch's alerts, and with one alert, ms. */
  alerterBatchMs: number[];
  alerterSingleMs: number[];
  /** From the throughput phase: share of batches that queued alerts, and alerts per record. */
  alertBatchFraction: number;
  alertsPerRecord: number;
}

export interface CostDesign {
  requestsPerMillion: number;
  gbSecondsPerMillion: number;
  usdPerMillion: number;
  /** The same with every duration stretched by the configured memory's CPU share (pessimistic). */
  usdPerMillionCpuAdjusted: number;
  scorerBilledMsPerInvocation: number;
  recordsPerInvocation: number;
}

export interface CostResult {
  batched: CostDesign;
  naive: CostDesign;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const billed = (ms: number) => Math.max(1, Math.ceil(ms));

function design(opts: {
  scorerMs: number[];
  recordsPerInvocation: number;
  alerterMs: number[];
  alerterInvocationsPerMillion: number;
  scorerMemoryMb: number;
  alerterMemoryMb: number;
}): CostDesign {
  const scorerInvocations = 1_000_000 / opts.recordsPerInvocation;
  const cost = (stretch: (mb: number) => number) => {
    const scorerS =
      mean(opts.scorerMs.map((ms) => billed(ms * stretch(opts.scorerMemoryMb)))) / 1000;
    const alerterS =
      mean(opts.alerterMs.map((ms) => billed(ms * stretch(opts.alerterMemoryMb)))) / 1000;
    const gbS =
      scorerInvocations * scorerS * (opts.scorerMemoryMb / 1024) +
      opts.alerterInvocationsPerMillion * alerterS * (opts.alerterMemoryMb / 1024);
    const requests = scorerInvocations + opts.alerterInvocationsPerMillion;
    return { gbS, requests, usd: requests * PRICE_PER_REQUEST_USD + gbS * PRICE_PER_GB_S_USD };
  };
  const plain = cost(() => 1);
  const adjusted = cost((mb) => Math.max(1, FULL_VCPU_MB / mb));
  return {
    requestsPerMillion: Math.round(plain.requests),
    gbSecondsPerMillion: round(plain.gbS, 2),
    usdPerMillion: round(plain.usd, 5),
    usdPerMillionCpuAdjusted: round(adjusted.usd, 5),
    scorerBilledMsPerInvocation: round(mean(opts.scorerMs.map(billed)), 2),
    recordsPerInvocation: round(opts.recordsPerInvocation, 1),
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function costModel(c: CostInputs): CostResult {
  const records = mean(c.batched.map((s) => s.records));
  const batched = design({
    // The runtime parses the request body before the handler starts its clock.
    scorerMs: c.batched.map((s) => s.handlerMs + c.batchBodyParseMs * (s.records / records)),
    recordsPerInvocation: records,
    alerterMs: c.alerterBatchMs,
    alerterInvocationsPerMillion: (1_000_000 / records) * c.alertBatchFraction,
    scorerMemoryMb: c.scorerMemoryMb,
    alerterMemoryMb: c.alerterMemoryMb,
  });
  const naive = design({
    scorerMs: c.singles.map((s) => s.handlerMs + c.batchBodyParseMs / records),
    recordsPerInvocation: 1,
    alerterMs: c.alerterSingleMs,
    alerterInvocationsPerMillion: 1_000_000 * c.alertsPerRecord,
    scorerMemoryMb: c.scorerMemoryMb,
    alerterMemoryMb: c.alerterMemoryMb,
  });
  return { batched, naive };
}
