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

  test('nearest-rank percentiles: p99.9 of 1..1000 is 999, the max 1000', () => {
    const summary = summarise(Array.from({ length: 1_000 }, (_, i) => 1_000 - i));
    expect(summary).toMatchObject({ count: 1_000, p50Ms: 500, p99Ms: 990, p999Ms: 999, maxMs: 1_000 });
  });
});
