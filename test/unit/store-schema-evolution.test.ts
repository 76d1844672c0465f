/**
 * A release that adds a column to a table (ColumnDef.addedLater with a default) and retires a
 * table (StoreModule.retiredTables) opens what the release before wrote: a store closed cleanly
 * (its checkpoint), snapshotted at close, or with frames after its snapshot; a backup it took;
 * and `store inspect`'s open says the same. Old rows read with the default, the state hash is
 * the one the old release recorded, the retired table's rows are kept (never dropped silently).
 * A release that drops a table without retiring it is refused, naming the table, and the store
 * still opens with the release before. Without the added-column encoding every old store was
 * refused (row of objects has 4 fields, schema has 5; or the state hash differs from the checkpoint's).
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { restoreBackup } from '../../storage/backup/restore.js';
import { backupStoreDirectory } from '../../storage/backup/take-backup.js';
import { canonicalStateHash } from '../../storage/canonical.js';
import { TableNotInModule } from '../../storage/errors.js';
import { inspectStore } from '../../storage/inspect.js';
import { OverlayFileLayer } from '../../storage/io/overlay-file-layer.js';
import { defineReducer, type StoreModule } from '../../storage/reducer.js';
import type { TableSchema } from '../../storage/schema.js';
import { Store } from '../../storage/store.js';
import { Table } from '../../storage/table.js';
import { tableLines } from '../../server/cli/table-lines.js';
import { counterModule, objectsTable, testCaller } from '../support/counter-module.js';

const notesTable: TableSchema = { name: 'notes', columns: [{ name: 'id', type: 'string' }, { name: 'text', type: 'string' }], primaryKey: ['id'] };
const note = defineReducer({
  name: 'note',
  args: z.object({ id: z.string(), text: z.string() }),
  run(ctx, args) {
    ctx.table('notes').upsert(args);
    return {};
  },
});

const v1: StoreModule = { tables: [objectsTable, notesTable], reducers: [...counterModule.reducers, note], tablesHashedWhenEmpty: ['objects', 'notes'] };

// v2: objects gains two columns (its reducers, written before them, leave them out), notes is retired.
const objectsV2: TableSchema = {
  ...objectsTable,
  columns: [
    ...objectsTable.columns,
    { name: 'label', type: 'string', addedLater: true, default: '' },
    { name: 'score', type: 'int', nullable: true, addedLater: true, default: null },
  ],
};
const v2: StoreModule = {
  tables: [objectsV2],
  retiredTables: [notesTable],
  tablesHashedWhenEmpty: ['objects', 'notes'],
  reducers: [...counterModule.reducers, defineReducer({
    name: 'set',
    args: z.object({ id: z.string(), label: z.string(), score: z.number().int().nullable() }),
    run(ctx, args) {
      const t = ctx.table('objects');
      t.update({ ...t.get([args.id])!, label: args.label, score: args.score });
      return {};
    },
  }), { ...note, name: 'note_retired' }],
};
const v2Unretired: StoreModule = { ...v2, retiredTables: [] };

type Written = 'closed cleanly' | 'snapshot at close' | 'frames after the snapshot';
const states: readonly Written[] = ['closed cleanly', 'snapshot at close', 'frames after the snapshot'];

async function writtenByV1(state: Written): Promise<{ dir: string; hash: string; offset: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-evolution-'));
  const store = await Store.open({ dir, module: v1 });
  for (let i = 0; i < 20; i++) await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: { i } }, testCaller);
  for (let i = 0; i < 3; i++) await store.call('note', { id: `n${i}`, text: `note ${i}` }, testCaller);
  if (state !== 'closed cleanly') await store.snapshot();
  if (state === 'frames after the snapshot') {
    for (let i = 0; i < 5; i++) await store.call('bump', { id: `o${i}`, by: 1 }, testCaller);
    await store.call('note', { id: 'n9', text: 'after the snapshot' }, testCaller);
  }
  const hash = store.stateHash();
  const offset = store.lastOffset;
  await store.close();
  return { dir, hash, offset };
}

const notesAfter = (state: Written) => (state === 'frames after the snapshot' ? 4 : 3);

describe('a release that adds a column and retires a table opens the stores of the release before', () => {
  test.each(states)('%s: old rows hold the defaults, the hash is unchanged, the retired rows are kept', async (state) => {
    const old = await writtenByV1(state);
    const upgraded = await Store.open({ dir: old.dir, module: v2 });
    expect(upgraded.lastOffset).toBe(old.offset);
    expect(upgraded.stateHash()).toBe(old.hash);
    expect(upgraded.tableCounts()).toMatchObject({ objects: 20, notes: notesAfter(state) });
    const o3 = await upgraded.read((view) => view.table('objects').get(['o3']));
    expect(o3).toEqual({ id: 'o3', type: 't', n: state === 'frames after the snapshot' ? 4 : 3, attributes: { i: 3 }, label: '', score: null });
    // A reducer written before the columns still writes rows (they get the defaults): the hash is the old one's.
    await upgraded.call('put', { id: 'o3', type: 't', n: 3, attributes: { i: 3 } }, testCaller);
    await upgraded.call('bump', { id: 'o3', by: state === 'frames after the snapshot' ? 1 : 0 }, testCaller);
    expect(upgraded.stateHash()).toBe(old.hash);
    // The retired table is reached by nothing.
    await expect(upgraded.call('note_retired', { id: 'x', text: 'y' }, testCaller)).rejects.toThrow('no table notes');
    await expect(upgraded.read((view) => view.table('notes').size)).rejects.toThrow('no table notes');

    await upgraded.call('set', { id: 'o1', label: 'red', score: 7 }, testCaller);
    await upgraded.call('set', { id: 'o2', label: 'blue', score: null }, testCaller);
    const labelled = upgraded.stateHash();
    expect(labelled).not.toBe(old.hash);
    await upgraded.snapshot();
    await upgraded.call('set', { id: 'o4', label: '', score: 0 }, testCaller); // a frame after v2's snapshot
    const hashV2 = upgraded.stateHash();
    await upgraded.close();

    const again = await Store.open({ dir: old.dir, module: v2 });
    expect(again.stateHash()).toBe(hashV2);
    expect(again.report.replayedFrames).toBe(1);
    const rows = await again.read((view) => ['o1', 'o2', 'o4', 'o5'].map((id) => view.table('objects').get([id])));
    expect(rows.map((r) => [r!.label, r!.score])).toEqual([['red', 7], ['blue', null], ['', 0], ['', null]]);
    // Back to the defaults, the rows are encoded as the old ones were: one state, one hash.
    await again.call('set', { id: 'o1', label: '', score: null }, testCaller);
    await again.call('set', { id: 'o2', label: '', score: null }, testCaller);
    await again.call('set', { id: 'o4', label: '', score: null }, testCaller);
    expect(again.stateHash()).toBe(old.hash);
    await again.close();
  });

  test('a backup taken of a v1 store restores with v2, its state hash verified', async () => {
    const old = await writtenByV1('frames after the snapshot');
    const backupDir = path.join(mkdtempSync(path.join(tmpdir(), 'ioboxx-evolution-backup-')), 'b');
    await backupStoreDirectory(old.dir, { backupDir, module: v1 });
    const target = path.join(mkdtempSync(path.join(tmpdir(), 'ioboxx-evolution-restore-')), 'store');
    const restored = await restoreBackup(backupDir, target, { module: v2 });
    expect(restored).toMatchObject({ stateHash: old.hash, endOffset: old.offset, stateHashVerified: true });
    const store = await Store.open({ dir: target, module: v2 });
    expect(await store.read((view) => view.table('objects').get(['o0'])?.label)).toBe('');
    expect(store.tableCounts()['notes']).toBe(4);
    await store.close();
  });

  test.each(states)('%s: store inspect and a read-only verify with v2 open it with the old hash', async (state) => {
    const old = await writtenByV1(state);
    const report = await inspectStore(old.dir, undefined, undefined, undefined, v2);
    expect(report.recovery).toMatchObject({ opens: true, stateHash: old.hash, lastOffset: old.offset });
    const readOnly = await Store.open({ dir: old.dir, module: v2, fileLayer: new OverlayFileLayer() });
    expect(readOnly.stateHash()).toBe(old.hash);
    await readOnly.close();
  });

  test('store verify and store inspect mark the retired table as retired, the live ones not', async () => {
    const old = await writtenByV1('snapshot at close');
    const report = await inspectStore(old.dir, undefined, undefined, undefined, v2);
    expect(report.snapshots[0]?.tables).toMatchObject({ notes: 3 });
    expect(report.retiredTables).toEqual(['notes']);
    const store = await Store.open({ dir: old.dir, module: v2, fileLayer: new OverlayFileLayer() });
    expect(store.retiredTables()).toEqual(['notes']);
    const lines = tableLines(store.tableCounts(), store.retiredTables());
    await store.close();
    expect(lines.find((l) => l.trim().startsWith('notes '))).toMatch(/^ {2}notes +3 {2}\(retired: rows kept, no tool reaches them\)$/);
    expect(lines.find((l) => l.trim().startsWith('objects '))).toMatch(/^ {2}objects +20$/);
  });
});

describe('going back to the release before', () => {
  test('opens the store while every added field holds its default; refuses it, naming why, once one does not', async () => {
    const old = await writtenByV1('frames after the snapshot');
    const upgraded = await Store.open({ dir: old.dir, module: v2 });
    await upgraded.call('set', { id: 'o1', label: 'red', score: null }, testCaller);
    await upgraded.call('set', { id: 'o1', label: '', score: null }, testCaller);
    await upgraded.snapshot();
    await upgraded.close();
    const back = await Store.open({ dir: old.dir, module: v1 });
    expect(back.stateHash()).toBe(old.hash);
    await back.close();

    const again = await Store.open({ dir: old.dir, module: v2 });
    await again.call('set', { id: 'o2', label: 'blue', score: null }, testCaller);
    await again.close();
    await expect(Store.open({ dir: old.dir, module: v1 })).rejects.toThrow('row of objects has 5 fields, schema has 4 (written by a later release');
    const v2Again = await Store.open({ dir: old.dir, module: v2 }); // nothing was changed by the refusal
    expect(await v2Again.read((view) => view.table('objects').get(['o2'])?.label)).toBe('blue');
    await v2Again.close();
  });
});

describe('a release that drops a table without retiring it', () => {
  test.each(states)('%s: the open is refused naming the table, and the release before still opens the store', async (state) => {
    const old = await writtenByV1(state);
    const refusal = await Store.open({ dir: old.dir, module: v2Unretired }).then(() => undefined, (e: unknown) => e);
    expect(refusal).toBeInstanceOf(TableNotInModule);
    const e = refusal as TableNotInModule;
    expect(e.table).toBe('notes');
    expect(e.where).toContain(state === 'closed cleanly' ? 'frame of offset' : 'snapshot');
    expect(e.hint).toContain('retiredTables');
    // Nothing was moved aside or dropped: v1 opens it whole.
    const back = await Store.open({ dir: old.dir, module: v1 });
    expect(back.stateHash()).toBe(old.hash);
    expect(back.report.snapshotsSkipped).toEqual([]);
    await back.close();
    expect(existsSync(path.join(old.dir, 'log'))).toBe(true);
  });
});

describe('added-later columns are checked where the module is declared', () => {
  const base = objectsTable;
  const refused: [string, TableSchema, string][] = [
    ['not last', { ...base, columns: [...base.columns.slice(0, 3), { name: 'label', type: 'string', addedLater: true, default: '' }, base.columns[3]!] }, 'a column added later comes last'],
    ['no default', { ...base, columns: [...base.columns, { name: 'label', type: 'string', addedLater: true }] }, 'needs a default'],
    ['a default of another type', { ...base, columns: [...base.columns, { name: 'label', type: 'int', addedLater: true, default: 'x' }] }, 'objects.label'],
    ['null default, not nullable', { ...base, columns: [...base.columns, { name: 'label', type: 'string', addedLater: true, default: null }] }, 'objects.label is required'],
    ['a default not in normal form', { ...base, columns: [...base.columns, { name: 'w', type: 'float', addedLater: true, default: -0 }] }, 'not in normal form'],
    ['in an index', { ...base, columns: [...base.columns, { name: 'label', type: 'string', addedLater: true, default: '' }], indexes: [{ name: 'by_label', columns: ['label'] }] }, 'cannot index column label, added later'],
    ['in the key', { ...base, columns: [...base.columns, { name: 'label', type: 'string', addedLater: true, default: '' }], primaryKey: ['id', 'label'] }, 'a key column cannot be added later'],
    ['a default on a first column', { ...base, columns: [{ name: 'id', type: 'string', default: 'x' }, ...base.columns.slice(1)] }, 'only for a column added later'],
  ];
  test.each(refused)('%s: refused', async (_what, schema, message) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-evolution-'));
    await expect(Store.open({ dir, module: { ...v1, tables: [schema] } })).rejects.toThrow(message);
  });
});

describe('property: a row has one encoding, the old one while its added columns hold their defaults', () => {
  const row = fc.record({
    id: fc.constantFrom('a', 'b', 'c', 'd', 'e'),
    n: fc.integer({ min: -300, max: 300 }),
    label: fc.constantFrom('', 'x', 'a longer label'),
    score: fc.constantFrom(null, 0, -1, 12),
  });
  test('v2 rows read back as put; the v2 hash equals v1\'s exactly when every added field holds its default', () => {
    fc.assert(fc.property(fc.array(row, { maxLength: 12 }), (rows) => {
      const old = new Table(objectsTable);
      const upgraded = new Table(objectsV2);
      for (const r of rows) {
        const base = { id: r.id, type: 't', n: r.n, attributes: { n: r.n } };
        old.put(old.keyOf(base), old.normalise(base));
        const full = upgraded.normalise({ ...base, label: r.label, score: r.score });
        upgraded.put(upgraded.keyOf(full), full);
        expect(upgraded.get([r.id])).toEqual(full);
      }
      const defaults = [...upgraded.scan()].every((r) => r.label === '' && r.score === null);
      const hashOf = (t: Table) => canonicalStateHash([{ schema: t.schema, rows: t.rows, arena: t.arena }]);
      expect(hashOf(upgraded) === hashOf(old)).toBe(defaults);
    }), { numRuns: 300 });
  });
});
