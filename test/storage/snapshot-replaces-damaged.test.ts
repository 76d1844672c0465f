/**
 * A snapshot written at the offset of one the open found damaged replaces it and is kept: the
 * open remembered that directory as damaged, and retention must not take the new one for it.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { listSnapshots, verifySnapshotFiles } from '../../storage/snapshot/reader.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test('a snapshot taken where the open skipped a damaged one replaces it, stays, and the next open loads it', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-snapshot-damaged-'));
  dirs.push(dir);
  let store = await Store.open({ dir, module: counterModule, segmentBytesMax: 2048 });
  for (let i = 0; i < 40; i++) {
    await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: { text: `object ${i}` } }, testCaller);
    if (i === 19) await store.snapshot();
  }
  const newest = await store.snapshot();
  const stateHash = store.stateHash();
  await store.close();
  const newestDir = path.join(dir, 'snapshots', String(newest.offset).padStart(20, '0'));
  const binary = path.join(newestDir, 'state.msgpack');
  const bytes = readFileSync(binary);
  bytes[10] = bytes[10]! ^ 0xff; // bit rot in the newest snapshot
  writeFileSync(binary, bytes);

  store = await Store.open({ dir, module: counterModule });
  expect(store.report.snapshotsSkipped.join()).toContain(newestDir);
  const again = await store.snapshot();
  await store.close();
  expect(again.offset).toBe(newest.offset);
  expect(readdirSync(path.join(dir, 'snapshots')), `the new snapshot at ${again.offset} was deleted by retention`).toContain(path.basename(newestDir));

  store = await Store.open({ dir, module: counterModule });
  try {
    expect(store.report.snapshotOffset).toBe(newest.offset);
    expect(store.report.snapshotsSkipped).toEqual([]);
    expect(store.stateHash()).toBe(stateHash);
  } finally {
    await store.close();
  }
});

test('a snapshot asked for at the offset of a loaded one whose JSON file is damaged writes it again, whole', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-snapshot-damaged-'));
  dirs.push(dir);
  let store = await Store.open({ dir, module: counterModule });
  for (let i = 0; i < 10; i++) await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: { text: `object ${i}` } }, testCaller);
  const newest = await store.snapshot();
  await store.close();
  const newestDir = path.join(dir, 'snapshots', String(newest.offset).padStart(20, '0'));
  const json = path.join(newestDir, 'state.json');
  const bytes = readFileSync(json);
  bytes[20] = bytes[20]! ^ 0x01; // bit rot in the JSON only: the open loads the msgpack file, which verifies
  writeFileSync(json, bytes);

  store = await Store.open({ dir, module: counterModule });
  expect(store.report.snapshotOffset).toBe(newest.offset);
  const again = await store.snapshot(); // what `store snapshot` runs
  await store.close();
  expect(again.offset).toBe(newest.offset);
  const [ref] = (await listSnapshots(dir, nodeFileLayer)).filter((r) => r.offset === newest.offset);
  expect(await verifySnapshotFiles(ref!, nodeFileLayer), 'store snapshot said it took the snapshot, and left the damaged one').toBeUndefined();
});
