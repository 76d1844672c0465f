import { describe, expect, test } from 'vitest';
import { LoopSlices } from '../../storage/io/event-loop.js';
import { sortInSlices, sortRunItems } from '../../storage/sort-in-slices.js';

describe('sorting in slices', () => {
  test('orders keys as a whole sort does, values moving with their keys, with turns of the event loop between slices', async () => {
    // Several runs and an odd tail: every merge pass has a run without a partner somewhere.
    const n = 5 * sortRunItems + 123;
    const keys = Array.from({ length: n }, (_, i) => `k${(i * 7919) % n}`.padEnd(8, '.'));
    const values = keys.map((k) => `v:${k}`);
    const expected = [...keys].sort();
    const slices = new LoopSlices(0);
    const sorted = await sortInSlices(keys, values, slices);
    expect(sorted.keys).toEqual(expected);
    expect(sorted.values).toEqual(expected.map((k) => `v:${k}`));
    expect(slices.turns).toBeGreaterThan(n / 1024);
  });

  test('an empty or one-run input comes back sorted', async () => {
    expect(await sortInSlices([], [], new LoopSlices())).toEqual({ keys: [], values: [] });
    expect(await sortInSlices(['b', 'a'], [2, 1], new LoopSlices())).toEqual({ keys: ['a', 'b'], values: [1, 2] });
  });

  test('input already in order across its runs comes back as it is; one pair out of order across a run boundary is still sorted', async () => {
    const n = 3 * sortRunItems + 5;
    const inOrder = Array.from({ length: n }, (_, i) => `k${String(i).padStart(8, '0')}`);
    const sorted = await sortInSlices([...inOrder], inOrder.map((k) => `v:${k}`), new LoopSlices());
    expect(sorted.keys).toEqual(inOrder);
    expect(sorted.values).toEqual(inOrder.map((k) => `v:${k}`));
    const swapped = [...inOrder];
    [swapped[sortRunItems - 1], swapped[sortRunItems]] = [swapped[sortRunItems]!, swapped[sortRunItems - 1]!];
    const resorted = await sortInSlices(swapped, swapped.map((k) => `v:${k}`), new LoopSlices());
    expect(resorted.keys).toEqual(inOrder);
    expect(resorted.values).toEqual(inOrder.map((k) => `v:${k}`));
  });
});
