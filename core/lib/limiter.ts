/**
 * The one concurrency limiter: a FIFO counting semaphore. `close()` turns every waiting and
 * future `acquire` into `false`, which is how loops stop without leaving waiters behind.
 */
export class Limiter {
  #active = 0;
  #closed = false;
  #waiters: Array<(ok: boolean) => void> = [];
  #idle: Array<() => void> = [];

  constructor(readonly limit: number) {
    if (!(limit >= 1)) throw new RangeError("a limiter needs a limit of at least 1");
  }

  /** Slots in use. */
  get active(): number {
    return this.#active;
  }

  /** Slots free right now. */
  get free(): number {
    return Math.max(0, this.limit - this.#active);
  }

  /** Takes a slot if one is free. */
  tryAcquire(): boolean {
    if (this.#closed || this.#active >= this.limit) return false;
    this.#active++;
    return true;
  }

  /** Waits for a slot, first come first served; `false` once the limiter is closed. */
  acquire(): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Gives a slot back; it passes straight to the next waiter, if any. */
  release(): void {
    const next = this.#closed ? undefined : this.#waiters.shift();
    if (next) {
      next(true);
      return;
    }
    this.#active = Math.max(0, this.#active - 1);
    if (this.#active === 0) for (const w of this.#idle.splice(0)) w();
  }

  /** Runs `task` in a slot (waiting for one). Throws if the limiter is closed. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (!(await this.acquire())) throw new Error("limiter closed");
    try {
      return await task();
    } finally {
      this.release();
    }
  }

  /** Refuses new and waiting acquires; slots already held stay held until released. */
  close(): void {
    this.#closed = true;
    for (const w of this.#waiters.splice(0)) w(false);
  }

  /** Resolves once no slot is held. */
  idle(): Promise<void> {
    if (this.#active === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

/** Runs `fn` over `items` with at most `limit` at once; results in input order. */
export function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const limiter = new Limiter(Math.max(1, limit));
  return Promise.all(items.map((item) => limiter.run(() => fn(item))));
}
