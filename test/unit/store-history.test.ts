/**
 * A store's history id (storage/history.ts): given once, durable in history.json, the same after
 * every reopen, snapshot, segment rotation and repair; a store written before history ids gets one
 * at its first writing open and keeps it; a damaged file refuses the open and is left as it was
 * (never a new id behind the operator's back); a restore starts a new history naming its parent.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { backupManifestFileName } from '../../storage/backup/backup-manifest.js';
import { restoreBackup } from '../../storage/backup/restore.js';
import { backupStore, backupStoreDirectory } from '../../storage/backup/take-backup.js';
import { DamagedStore } from '../../storage/errors.js';
import { forkedHistory, historyAncestorsMax, historyFileName, readStoreHistory, sharesOffsets } from '../../storage/history.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { checkpointFileName } from '../../storage/log/checkpoint.js';
import { manifestFileName } from '../../storage/snapshot/manifest.js';
import { OverlayFileLayer } from '../../storage/io/overlay-file-layer.js';
import { repairStore } from '../../storage/repair.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

/** Under the run's own TMPDIR (test/support/tmp-root.ts), removed when the run ends. */
function scratch(): string {
  return mkdtempSync(path.join(tmpdir(), 'ioboxx-history-'));
}

async function storeWith(dir: string, writes: number, options: { segmentBytesMax?: number } = {}): Promise<Store> {
  const store = await Store.open({ dir, module: counterModule, ...options });
  for (let i = 0; i < writes; i++) await store.call('bump', { id: `c${i % 3}`, by: 1 }, testCaller);
  return store;
}

/** The store's files as a version before history ids left them: no history.json, no history in the checkpoint or the snapshot manifests. */
function asBeforeHistoryIds(dir: string): void {
  unlinkSync(path.join(dir, historyFileName));
  const files = [path.join(dir, 'log', checkpointFileName), ...listSnapshotDirs(dir).map((d) => path.join(d, manifestFileName))];
  for (const file of files.filter((f) => existsSync(f))) {
    const { history: _history, ...content } = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    writeFileSync(file, JSON.stringify(content));
  }
}

function listSnapshotDirs(dir: string): string[] {
  const root = path.join(dir, 'snapshots');
  return existsSync(root) ? readdirSync(root).map((name) => path.join(root, name)) : [];
}

async function reopenedHistoryId(dir: string): Promise<string> {
  const store = await Store.open({ dir, module: counterModule });
  try {
    return store.history.id;
  } finally {
    await store.close();
  }
}

describe('a store keeps one history id', () => {
  test('a new store is given an id at its first open and keeps it through snapshots, rotation, reopen and repair', async () => {
    const dir = scratch();
    const store = await storeWith(dir, 0, { segmentBytesMax: 600 });
    const id = store.history.id;
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(store.history).toMatchObject({ origin: 'created', startOffset: 0, ancestors: [] });
    expect(store.report.historyWritten).toBe('created');
    for (let i = 0; i < 40; i++) await store.call('bump', { id: 'c', by: 1 }, testCaller); // several segments of 600 bytes
    await store.snapshot();
    await store.close();
    expect(await reopenedHistoryId(dir)).toBe(id);
    await repairStore(dir, Date.now());
    expect(await reopenedHistoryId(dir)).toBe(id);
    expect((await readStoreHistory(dir, nodeFileLayer))?.id).toBe(id);
  });

  test('a store written before history ids is adopted at its first writing open, once', async () => {
    const dir = scratch();
    const before = await storeWith(dir, 5);
    await before.snapshot();
    await before.close();
    asBeforeHistoryIds(dir);
    // A read-only open (store verify --read-only, inspect) writes nothing: the id is given by the first open that writes.
    const readOnly = await Store.open({ dir, module: counterModule, fileLayer: new OverlayFileLayer() });
    expect(readOnly.report.historyWritten).toBe('adopted');
    await readOnly.close();
    expect(await readStoreHistory(dir, nodeFileLayer)).toBeUndefined();

    const store = await Store.open({ dir, module: counterModule });
    expect(store.history).toMatchObject({ origin: 'adopted', startOffset: 5, ancestors: [] });
    const id = store.history.id;
    await store.close();
    const again = await Store.open({ dir, module: counterModule });
    expect(again.history.id).toBe(id);
    expect(again.report.historyWritten).toBeUndefined();
    await again.close();
  });

  test.each([
    ['a flipped digit of the id', (text: string) => text.replace(/"id": "([0-9a-f])/, (_m, c: string) => `"id": "${c === '0' ? '1' : '0'}`)],
    ['a cut file', (text: string) => text.slice(0, 40)],
    ['another format', (text: string) => text.replace('"format": 1', '"format": 9')],
  ])('%s refuses the open naming the file, and the file stays as it was', async (_what, damage) => {
    const dir = scratch();
    await (await storeWith(dir, 3)).close();
    const file = path.join(dir, historyFileName);
    const damaged = damage(readFileSync(file, 'utf8'));
    writeFileSync(file, damaged);
    const refusal = await Store.open({ dir, module: counterModule }).then(() => undefined, (error: unknown) => error);
    expect(refusal).toBeInstanceOf(DamagedStore);
    expect((refusal as DamagedStore).file).toBe(file);
    expect((refusal as DamagedStore).hint).toContain('move it aside');
    expect(readFileSync(file, 'utf8')).toBe(damaged);
  });
});

describe('a store that lost history.json gets its id back from the files that record it', () => {
  test('from the newest snapshot manifest (no clean close): the same file, byte for byte, and the open names the manifest', async () => {
    const dir = scratch();
    const store = await storeWith(dir, 3);
    await store.snapshot();
    await store.call('bump', { id: 'after', by: 1 }, testCaller);
    await store.close();
    const file = path.join(dir, historyFileName);
    const original = readFileSync(file, 'utf8');
    unlinkSync(path.join(dir, 'log', checkpointFileName)); // as a crash leaves it: the snapshot is the only record
    unlinkSync(file);

    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.history.id).toBe(store.history.id);
    expect(reopened.report.historyRecoveredFrom).toBe(path.join(listSnapshotDirs(dir)[0]!, manifestFileName));
    expect(reopened.report.historyWritten).toBeUndefined();
    await reopened.close();
    expect(readFileSync(file, 'utf8')).toBe(original);
  });

  test('from the clean-close checkpoint, when no snapshot was taken', async () => {
    const dir = scratch();
    const store = await storeWith(dir, 4);
    await store.close();
    expect(listSnapshotDirs(dir)).toEqual([]);
    unlinkSync(path.join(dir, historyFileName));
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.history).toEqual(store.history);
    expect(reopened.report.historyRecoveredFrom).toBe(path.join(dir, 'log', checkpointFileName));
    await reopened.close();
    expect(await reopenedHistoryId(dir)).toBe(store.history.id); // written back: the checkpoint it came from is gone now
  });

  test('a store whose checkpoint and snapshots record no history (written before they did) opens unchanged, its snapshot loaded', async () => {
    const dir = scratch();
    const store = await storeWith(dir, 3);
    await store.snapshot();
    const hash = store.stateHash();
    await store.close();
    const history = readFileSync(path.join(dir, historyFileName), 'utf8');
    asBeforeHistoryIds(dir);
    writeFileSync(path.join(dir, historyFileName), history);
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report).toMatchObject({ snapshotOffset: 2, snapshotsSkipped: [], checkpointVerified: true });
    expect(reopened.report.historyRecoveredFrom).toBeUndefined();
    expect(reopened.stateHash()).toBe(hash);
    expect(reopened.history.id).toBe(store.history.id);
    await reopened.close();
  });

  test('a read-only open recovers it in memory and writes nothing', async () => {
    const dir = scratch();
    const store = await storeWith(dir, 2);
    await store.close();
    unlinkSync(path.join(dir, historyFileName));
    const readOnly = await Store.open({ dir, module: counterModule, fileLayer: new OverlayFileLayer() });
    expect(readOnly.history.id).toBe(store.history.id);
    expect(readOnly.report.historyRecoveredFrom).toBe(path.join(dir, 'log', checkpointFileName));
    await readOnly.close();
    expect(existsSync(path.join(dir, historyFileName))).toBe(false);
  });

  test('a backup of its files names the recorded history, and the store restored from it names that as its parent', async () => {
    const root = scratch();
    const store = await storeWith(path.join(root, 'store'), 3);
    await store.snapshot();
    await store.close();
    unlinkSync(path.join(root, 'store', historyFileName));
    const backupDir = path.join(root, 'backup');
    const taken = await backupStoreDirectory(path.join(root, 'store'), { backupDir, module: counterModule });
    expect(taken.manifest.history, 'the store has a history (its next open puts it back): not "never opened by a version with history ids"').toEqual(store.history);
    const restored = await restoreBackup(backupDir, path.join(root, 'restored'), { module: counterModule });
    expect(restored.history.ancestors).toEqual([{ id: store.history.id, forkOffset: 2 }]);
  });

  test('a restored store gets its own id back, not its parent\'s: the copied snapshots record the new history', async () => {
    const root = scratch();
    const store = await storeWith(path.join(root, 'store'), 3);
    await store.snapshot();
    const backupDir = path.join(root, 'backup');
    await backupStore(store, { backupDir, module: counterModule });
    await store.close();
    const target = path.join(root, 'restored');
    const restored = await restoreBackup(backupDir, target, { module: counterModule });
    unlinkSync(path.join(target, 'log', checkpointFileName)); // the restore's proving open closed it: only the snapshot records a history now
    unlinkSync(path.join(target, historyFileName));
    const reopened = await Store.open({ dir: target, module: counterModule });
    expect(reopened.history).toEqual(restored.history);
    expect(reopened.history.id).not.toBe(store.history.id);
    await reopened.close();
  });
});

describe('a restore starts a new history', () => {
  test('the restored store has a new id whose parent is the backup\'s store, forked at the backup\'s end', async () => {
    const root = scratch();
    const store = await storeWith(path.join(root, 'store'), 4);
    const original = store.history;
    const backupDir = path.join(root, 'backup');
    const taken = await backupStore(store, { backupDir, module: counterModule });
    expect(taken.manifest.history).toEqual(original);
    await store.call('bump', { id: 'later', by: 1 }, testCaller); // offset 4 in the lost store
    await store.close();

    const restored = await restoreBackup(backupDir, path.join(root, 'restored'), { module: counterModule });
    expect(restored.history.id).not.toBe(original.id);
    expect(restored.history).toMatchObject({ origin: 'restored', startOffset: 4, ancestors: [{ id: original.id, forkOffset: 3 }] });
    expect(await reopenedHistoryId(path.join(root, 'restored'))).toBe(restored.history.id);

    // A backup of the restored store (from its files) carries its history; restoring that one chains the ancestry.
    const second = path.join(root, 'backup-2');
    await backupStoreDirectory(path.join(root, 'restored'), { backupDir: second, module: counterModule });
    const again = await restoreBackup(second, path.join(root, 'restored-2'), { module: counterModule });
    expect(again.history.ancestors).toEqual([{ id: restored.history.id, forkOffset: 3 }, { id: original.id, forkOffset: 3 }]);
  });

  test('a backup taken before history ids restores with an unknown ancestry', async () => {
    const root = scratch();
    const store = await storeWith(path.join(root, 'store'), 2);
    const backupDir = path.join(root, 'backup');
    await backupStore(store, { backupDir, module: counterModule });
    await store.close();
    // As a version before history ids wrote it: format 1 has no SHA-256 of its own to fix up.
    const manifestFile = path.join(backupDir, backupManifestFileName);
    const { manifestSha256: _digest, history: _history, ...content } = JSON.parse(readFileSync(manifestFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(manifestFile, JSON.stringify({ ...content, format: 1 }, null, 2));
    const restored = await restoreBackup(backupDir, path.join(root, 'restored'), { module: counterModule });
    expect(restored.history).toMatchObject({ origin: 'restored', startOffset: 2, ancestors: [] });
  });
});

describe('sharesOffsets: may a consumer at (history, offset) resume here', () => {
  const parent = { id: 'a'.repeat(32), ancestors: [] };
  const child = forkedHistory(parent, 10, 0);
  test('same history: yes; the parent up to the fork: yes; past it, or an unknown history: no', () => {
    expect(sharesOffsets(child, child.id, 500)).toBe(true);
    expect(sharesOffsets(child, parent.id, 10)).toBe(true);
    expect(sharesOffsets(child, parent.id, 11)).toBe(false);
    expect(sharesOffsets(child, 'b'.repeat(32), 0)).toBe(false);
  });
  test('a grandchild forked earlier than its parent was shares only up to the earlier fork', () => {
    const grandchild = forkedHistory(child, 7, 0);
    expect(sharesOffsets(grandchild, child.id, 7)).toBe(true);
    expect(sharesOffsets(grandchild, parent.id, 7)).toBe(true);
    expect(sharesOffsets(grandchild, parent.id, 8)).toBe(false);
    const later = forkedHistory(child, 20, 0);
    expect(sharesOffsets(later, parent.id, 10)).toBe(true);
    expect(sharesOffsets(later, parent.id, 11)).toBe(false);
  });
  test(`at most ${historyAncestorsMax} ancestors are kept`, () => {
    let h = forkedHistory(parent, 1, 0);
    for (let i = 0; i < historyAncestorsMax + 5; i++) h = forkedHistory(h, 1, 0);
    expect(h.ancestors).toHaveLength(historyAncestorsMax);
  });
});
