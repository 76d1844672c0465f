/** Lets timers, I/O callbacks and other tenants' requests run before long work goes on. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Longest an open holds the event loop in one piece: one process serves every tenant, so a big
 * tenant's open (index builds, the state hash, replay) must leave turns for the others' calls,
 * /healthz and WebSocket pings. Checked every `loopSliceCheckItems` items, so a slice overruns it
 * by at most that many items' work, and a young-generation GC landing in a slice adds its pause
 * (25-70 ms while an open builds its trees: most of what it allocates survives). So the slice is
 * well under the 50 ms we want between turns: at 50 ms, an open of the 1M-object bench store held
 * the loop 125-180 ms at its worst, with 8-9 holds of 50 ms or more; at 20 ms (and the tree builds
 * and snapshot decode sliced by time too), 88-118 ms and 3-5 (2026-11-30, 3 runs each; the open
 * no slower: 1.2-1.6 s either way).
 */
export const openSliceMsMax = 20;
/** Items (rows, frames) between two reads of the clock: a mask, so a power of two. */
export const loopSliceCheckItems = 1024;

/**
 * Cuts long work into slices of at most `sliceMs`, with a turn of the event loop between them.
 * A loop calls `due(i)` per item (cheap: the clock is read every loopSliceCheckItems items) and
 * awaits `turn()` when it says so.
 */
export class LoopSlices {
  /** Turns of the event loop given so far. */
  turns = 0;
  private sliceStartMs = performance.now();

  /** `sliceMs` 0: a turn at every check (tests). `onTurn` runs before each turn. */
  constructor(private readonly sliceMs: number = openSliceMsMax, private readonly onTurn?: () => void) {
    if (!(sliceMs >= 0)) throw new RangeError(`slice of ${sliceMs} ms`);
  }

  /** True when item `i` is a check point and the slice has used its time. */
  due(i: number): boolean {
    return (i & (loopSliceCheckItems - 1)) === 0 && performance.now() - this.sliceStartMs >= this.sliceMs;
  }

  /** Give the event loop a turn; the next slice starts after it. */
  async turn(): Promise<void> {
    this.onTurn?.();
    await yieldToEventLoop();
    this.turns++;
    this.sliceStartMs = performance.now();
  }
}
