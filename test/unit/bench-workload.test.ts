import { describe, expect, test } from 'vitest';
import { benchObject, bulkObject, decimalText, workloadKeySpace } from '../../bench/workload.js';

describe('bench workload (ids made without number-to-string conversion)', () => {
  test('decimalText writes what String(n) writes, across its chunk boundaries', () => {
    const edges = [0, 1, 9, 10, 999, 1_000, 9_999, 10_000, 10_001, 10_010, 99_999_999, 100_000_000, 100_000_001, 123_400_005_678, Number.MAX_SAFE_INTEGER];
    for (const n of edges) expect(decimalText(n)).toBe(String(n));
    for (let n = 0; n < 300_000; n += 7) expect(decimalText(n)).toBe(String(n));
  });

  test('decimalText refuses what is not a safe non-negative integer', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) expect(() => decimalText(bad)).toThrow(/safe non-negative integer/);
  });

  test('the objects are the ones template literals made before: same ids, titles and key space', () => {
    for (const [caller, seq] of [[0, 0], [3, 17], [63, 123_456]] as const) {
      const n = (caller * 7_919 + seq * 104_729) % workloadKeySpace;
      expect(benchObject(caller, seq)).toEqual({ id: `obj-${n}`, type: 'note', attributes: { title: `object ${n}`, n: seq, tags: ['bench', 'memory'] } });
    }
    expect(bulkObject(987_654)).toEqual({ id: 'bulk-987654', type: 'note', attributes: { title: 'object 987654', n: 987_654, tags: ['bench'] } });
  });
});
