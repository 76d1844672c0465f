/**
 * Past arSurfacesMax surfaces a new one is refused naming the limit and the way out; the
 * surfaces there go on taking observations, and removing one makes room for a new one.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { arSurfacesMax } from '../../tools/ar.js';
import { expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
const pose = [0, 0, 0, 0, 0, 0, 1];

beforeAll(async () => {
  f = await openFixture();
  const chunk = 2000;
  for (let i = 0; i < arSurfacesMax; i += chunk) {
    await Promise.all(Array.from({ length: Math.min(chunk, arSurfacesMax - i) }, (_, j) => f.call('ar_observe', { surface: `s${i + j}`, pose })));
  }
}, 120_000);
afterAll(() => f.close());

test(`past arSurfacesMax (${arSurfacesMax}) a new surface is refused naming the limit and what to do`, async () => {
  const refused = await expectRefused(f, f.call('ar_observe', { surface: 'one-more', pose }), 'limit_exceeded',
    new RegExp(`surface one-more would be new; the tenant has ${arSurfacesMax} surfaces, the limit \\(arSurfacesMax\\) is ${arSurfacesMax}`));
  expect(refused.hint).toMatch(/ar_surface_remove \(ar_surfaces_list with observed_before_ms/);
  expect(await f.call('ar_observe', { surface: 's7', pose })).toMatchObject({ seq: 2, latest: true });
  await f.call('ar_surface_remove', { surface: 's7' });
  expect(await f.call('ar_observe', { surface: 'one-more', pose })).toMatchObject({ seq: 1, latest: true });
  await expectRefused(f, f.call('ar_observe', { surface: 's7', pose }), 'limit_exceeded');
});
