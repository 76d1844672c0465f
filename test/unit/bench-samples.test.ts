import { describe, expect, test } from 'vitest';
import { Samples, summarise } from '../../bench/stats.js';

describe('bench latency samples (chunked, never copied while recording)', () => {
  test('summarise every sample added, across chunk boundaries, like one array would', () => {
    for (const n of [1, 15, 16, 17, 1_024, 1_025, 200_000]) {
      const samples = new Samples(16);
      const all: number[] = [];
      for (let i = 0; i < n; i++) {
        const v = ((i * 7_919) % 10_007) / 100;
        samples.add(v);
        all.push(v);
      }
      expect(samples.count).toBe(n);
      expect(samples.summary()).toEqual(summarise(all));
    }
  });
});
