/**
 * Loading the denial spools at a start (server/control/denial-spool.ts) holds at most
 * denialSpoolDenialsMax denials in memory: spools past that wait for the next start, oldest first.
 * The spools here are version 1 files, as earlier versions wrote them at a clean shutdown.
 */
import { mkdtemp, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { denialSpoolDir, loadDenialSpools, removeDenialSpool } from '../../server/control/denial-spool.js';
import { denialSpoolBytesMax, denialSpoolDenialsMax } from '../../server/control/denial-spool-format.js';
import type { ServerAuditEvent } from '../../storage/control/audit-staging.js';
import { writeWholeDenialSpool } from '../support/whole-denial-spool.js';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-spool-load-'));
});
afterEach(() => rm(dataDir, { recursive: true, force: true }));

function denials(count: number, action: string): ServerAuditEvent[] {
  return Array.from({ length: count }, (_, i) => ({ tenant: null, atMs: 1_700_000_000_000 + i, subject: null, action, target: '/mcp', outcome: 'denied' }));
}

test('spools past denialSpoolDenialsMax denials in all wait for the next start, oldest loaded first', async () => {
  const half = denialSpoolDenialsMax / 2;
  await writeWholeDenialSpool(dataDir, denials(half, 'first'));
  await new Promise((resolve) => setTimeout(resolve, 2)); // spool names sort by their millisecond
  await writeWholeDenialSpool(dataDir, denials(half, 'second'));
  await new Promise((resolve) => setTimeout(resolve, 2));
  await writeWholeDenialSpool(dataDir, denials(1, 'third'));

  const first = await loadDenialSpools(dataDir);
  expect(first.spools.map((s) => s.denials[0]!.action)).toEqual(['first', 'second']);
  expect(first.deferred).toBe(1);
  for (const spool of first.spools) await removeDenialSpool(spool);

  const next = await loadDenialSpools(dataDir);
  expect(next.spools.map((s) => s.denials[0]!.action)).toEqual(['third']);
  expect(next.deferred).toBe(0);
}, 60_000);

test('a spool over denialSpoolBytesMax is set aside by its size, the others still load', async () => {
  await writeWholeDenialSpool(dataDir, denials(3, 'kept'));
  const dir = denialSpoolDir(dataDir);
  const [name] = await readdir(dir);
  const huge = path.join(dir, `${name!.slice(0, -'.json'.length).replace(/.$/, (c) => (c === '0' ? '1' : '0'))}.json`);
  await writeFile(huge, '');
  await truncate(huge, denialSpoolBytesMax + 1); // sparse: only its size can refuse it
  const loaded = await loadDenialSpools(dataDir);
  expect(loaded.spools.map((s) => s.denials.length)).toEqual([3]);
  expect(loaded.setAside).toEqual([{ file: huge, movedTo: expect.stringContaining(path.basename(huge)), reason: `${path.basename(huge)} has ${denialSpoolBytesMax + 1} bytes, over ${denialSpoolBytesMax} (denialSpoolBytesMax)` }]);
});
