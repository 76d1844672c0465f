/**
 * The calls a server is working on, so shutdown can wait for exactly those: `run` (or `begin`)
 * admits a call while open; `close` refuses new ones (retryable `unavailable`: another node or a
 * restarted server will take them) and `drained` resolves when the last admitted one ends.
 * Over HTTP a call lasts until its answer is written (an answer on an SSE stream included), so
 * a call that committed is answered before the shutdown closes its session.
 */
import { MemoryError } from '../../storage/errors.js';

export class InFlightCalls {
  private count = 0;
  private closed = false;
  private waiters: (() => void)[] = [];

  get size(): number {
    return this.count;
  }

  get accepting(): boolean {
    return !this.closed;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    const end = this.begin();
    try {
      return await work();
    } finally {
      end();
    }
  }

  /** Admits one call; the returned `end` (idempotent) says it is over. Throws `unavailable` once closed. */
  begin(): () => void {
    if (this.closed) throw new MemoryError('unavailable', 'the server is shutting down', 'retry shortly; acknowledged work is safe');
    this.count++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.count === 0) this.wake();
    };
  }

  /** Stop admitting calls; those already running go on. */
  close(): void {
    this.closed = true;
  }

  /** Resolves when no admitted call is running. */
  drained(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
