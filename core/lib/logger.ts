/**
 * The one logger port of the code base. Powertools' `Logger` satisfies it, so does `console`
 * (through {@link consoleLogger}) and every test double; adapters and use cases take it instead
 * of a concrete logger, so they never build log items the active level would drop.
 */
export type LogExtra = Record<string, unknown>;

export interface Logger {
  debug(message: string, ...extra: LogExtra[]): void;
  info(message: string, ...extra: LogExtra[]): void;
  warn(message: string, ...extra: LogExtra[]): void;
  error(message: string, ...extra: LogExtra[]): void;
}

/** Drops everything (tests, tools that print their own output). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** Plain console output, one line per call: `level message {extra}`. */
export const consoleLogger: Logger = {
  debug: (m, ...e) => console.debug(m, ...e),
  info: (m, ...e) => console.info(m, ...e),
  warn: (m, ...e) => console.warn(m, ...e),
  error: (m, ...e) => console.error(m, ...e),
};

/**
 * Whether `logger` writes `debug` lines: Powertools' `Logger` is asked its level (its `debug`
 * call costs even when dropped: it reads the environment for a trace id first); any other
 * logger is assumed to. Callers ask once per batch, not per record.
 */
export function logsDebug(logger: Logger): boolean {
  const named = logger as Logger & { getLevelName?: () => string };
  if (typeof named.getLevelName !== "function") return true;
  const level = named.getLevelName();
  return level === "DEBUG" || level === "TRACE";
}
