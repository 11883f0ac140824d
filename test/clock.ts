/** A clock for unit tests: `sleep` advances time at once and records how long it was asked to. */
import type { Clock } from "../core/lib/time.ts";

export interface FakeClock extends Clock {
  /** Now, epoch ms; tests may move it. */
  t: number;
  /** Every sleep asked for, in order. */
  slept: number[];
}

export function fakeClock(start = 1_000_000): FakeClock {
  const c: FakeClock = {
    t: start,
    slept: [],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.slept.push(ms);
      c.t += ms;
      return true;
    },
  };
  return c;
}
