import { describe, expect, test } from 'vitest';
import { FramePositions } from '../../storage/log/frame-positions.js';

describe('frame positions (chunked, no growing array)', () => {
  test('hold every position appended, across chunk boundaries, by index and by slice', () => {
    const positions = new FramePositions();
    const expected: number[] = [];
    let at = 24;
    for (let i = 0; i < 50_000; i++) {
      positions.push(at);
      expected.push(at);
      at += 100 + (i % 300);
    }
    expect(positions.length).toBe(50_000);
    for (const i of [0, 1, 8191, 8192, 8193, 16_384, 49_999]) expect(positions.at(i)).toBe(expected[i]);
    expect([...positions.slice(8190, 8200)]).toEqual(expected.slice(8190, 8200));
    expect([...positions.slice(49_990)]).toEqual(expected.slice(49_990));
    expect([...positions.slice(49_990, 60_000)]).toEqual(expected.slice(49_990));
    expect(positions.slice(50_000).length).toBe(0);
    expect([...positions.slice(0)]).toEqual(expected);
  });

  test('refuse an index outside them and a position that is no byte position of a segment', () => {
    const positions = new FramePositions();
    expect(() => positions.at(0)).toThrow(/outside/);
    positions.push(0xffff_ffff);
    expect(positions.at(0)).toBe(0xffff_ffff);
    expect(() => positions.at(1)).toThrow(/outside/);
    expect(() => positions.at(-1)).toThrow(/outside/);
    for (const bad of [-1, 0x1_0000_0000, 1.5, Number.NaN]) expect(() => positions.push(bad)).toThrow(/position/);
    expect(positions.length).toBe(1);
  });
});
