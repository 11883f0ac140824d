/**
 * Option parsing for the `waf` subcommands (node:util parseArgs, strict), with errors that say
 * which option is wrong. A UsageError exits 2, like a bad configuration.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";

export class UsageError extends Error {
  override readonly name = "UsageError";
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `args` against `options`; unknown options and bad values become a UsageError. */
export function parse<O extends Options>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`waf ${command}: ${(err as Error).message}`);
  }
}

/** A whole number ≥ `min`; `undefined` stays `undefined`. */
export function intOption(
  command: string,
  name: string,
  value: string | undefined,
  min = 1,
): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim()) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(
      `waf ${command}: --${name} must be a whole number ≥ ${min} (got "${value}")`,
    );
  }
  return Number(value);
}

/** A finite number > 0; `undefined` stays `undefined`. */
export function rateOption(
  command: string,
  name: string,
  value: string | undefined,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(`waf ${command}: --${name} must be a number > 0 (got "${value}")`);
  }
  return n;
}
