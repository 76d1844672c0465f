import { describe, expect, test } from 'vitest';
import { busiestPhaseShare, slowSyncCycle } from '../../bench/host-cycle.js';

describe('bench: slow fdatasyncs on the host 100 ms cycle', () => {
  test('events on one phase of the cycle are all in its busiest window; other cycles spread them', () => {
    const times = Array.from({ length: 50 }, (_, i) => 1_000 + 37 + 100 * i + (i % 3));
    expect(busiestPhaseShare(times, 100, 10)).toBe(1);
    expect(busiestPhaseShare(times, 73, 10)).toBeLessThan(0.4);
  });

  test('a window wraps around the end of the cycle', () => {
    const times = [98, 199, 303, 402, 550];
    expect(busiestPhaseShare(times, 100, 10)).toBe(0.8);
  });

  test('events spread evenly over the cycle: the window holds its width in share', () => {
    const times = Array.from({ length: 1_000 }, (_, i) => i + 0.5);
    expect(busiestPhaseShare(times, 100, 10)).toBeCloseTo(0.1, 10);
    expect(busiestPhaseShare([], 100, 10)).toBe(0);
    expect(() => busiestPhaseShare(times, 100, 0)).toThrow(/window/);
  });

  test('only the syncs at or above the p99 count', () => {
    const ends = Float64Array.from({ length: 200 }, (_, i) => 5 * i);
    // Slow at every 100 ms (ends 0, 100, ...), fast elsewhere.
    const syncs = Float64Array.from(ends, (t) => (t % 100 === 0 ? 4 : 0.3));
    const cycle = slowSyncCycle(ends, syncs, 4);
    // The 190 fast ones, counted, would make it 10 / 200 + the 10 % of them in the window.
    expect(cycle.hostCyclePercent).toBe(100);
    expect(cycle.controlPercent).toBeLessThan(50);
    expect(() => slowSyncCycle(ends, syncs.subarray(1), 4)).toThrow(/end times/);
  });
});
