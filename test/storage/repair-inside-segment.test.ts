/**
 * Damage below a verified snapshot taken inside the same segment (the usual shape: a store's
 * log is one 64 MiB segment, and its snapshots fall inside it): repair keeps the snapshot and the
 * intact frames past the damage, which become a segment of their own, and drops nothing. Cutting
 * at the damage instead would drop every acknowledged transaction after it, snapshot included.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { repairStore } from '../../storage/repair.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-repair-inside-segment-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('a bad frame below a snapshot inside the same segment: repair drops nothing, the store reopens whole', async () => {
  const dir = path.join(work, 'store');
  let store = await Store.open({ dir, module: counterModule });
  for (let i = 0; i < 60; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
  const snap = await store.snapshot();
  for (let i = 60; i < 120; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
  const hash = store.stateHash();
  await store.close();
  const logDir = path.join(dir, 'log');
  const segments = readdirSync(logDir).filter((n) => n.endsWith('.log'));
  expect(segments).toHaveLength(1); // the snapshot (offset 59) lies inside the one segment
  const file = path.join(logDir, segments[0]!);
  const bytes = readFileSync(file);
  bytes[200] = bytes[200]! ^ 0xff; // inside one of the first frames, far below the snapshot
  writeFileSync(file, bytes);
  await expect(Store.open({ dir, module: counterModule })).rejects.toThrow(/checksum/);

  const report = await repairStore(dir, 1_700_000_000_000);
  expect(report.damaged).toBe(true);
  expect(report.droppedTransactions).toBe(0);
  // Nothing deleted: the damaged segment is kept whole aside.
  expect(readFileSync(path.join(report.asideDir!, segments[0]!))).toEqual(bytes);
  expect((await repairStore(dir, 1_700_000_000_001)).damaged).toBe(false);

  store = await Store.open({ dir, module: counterModule });
  expect(store.report.snapshotOffset).toBe(snap.offset);
  expect(store.lastOffset).toBe(119);
  expect(store.stateHash()).toBe(hash);
  await store.close();
});
