/**
 * Online backup and restore against real stores on disk: a backup taken while writers keep
 * committing restores elsewhere to exactly the state the writers had produced at the backup's
 * end offset (checked against an independent replay of the acknowledged calls), and a backup
 * whose bytes changed is refused with the file named.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { backupManifestFileName, backupStoreDirName } from '../../storage/backup/backup-manifest.js';
import { restoreBackup } from '../../storage/backup/restore.js';
import { backupStore, backupStoreDirectory, type BackupReport } from '../../storage/backup/take-backup.js';
import { BackupInvalid, backupManifestBytesMax, readBackupManifest } from '../../storage/backup/verify-backup.js';
import { Store } from '../../storage/store.js';
import { MemoryError } from '../../storage/errors.js';
import { backupSpaceHint, restoreSpaceHint } from '../../storage/backup/backup-space.js';
import { countingFileLayer } from '../support/counting-file-layer.js';
import { asFileLayer, FaultyFileLayer } from '../support/faulty-file-layer.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const fixedClock = () => 1_700_000_000_000;
const dirs: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Acked {
  readonly offset: number;
  readonly reducer: string;
  readonly args: Record<string, unknown>;
}

/** Writers that commit until stopped, remembering every acknowledged call. */
function startWriters(store: Store, count: number) {
  const acked: Acked[] = [];
  let stopped = false;
  let n = 0;
  const loops = Array.from({ length: count }, async (_, w) => {
    while (!stopped) {
      const i = n++;
      const [reducer, args] = i % 3 === 0
        ? ['put', { id: `o${i % 50}`, type: `t${w}`, n: i, attributes: { i } }] as const
        : ['bump', { id: `c${i % 13}`, by: i }] as const;
      const r = await store.call(reducer, args, testCaller);
      acked.push({ offset: r.offset, reducer, args });
    }
  });
  return { acked, stop: async () => { stopped = true; await Promise.all(loops); } };
}

function reachOffset(store: Store, offset: number): Promise<void> {
  return new Promise((resolve) => {
    if (store.durableOffset >= offset) return resolve();
    const off = store.onCommit(() => {
      if (store.durableOffset >= offset) {
        off();
        resolve();
      }
    });
  });
}

/** The state hash at `endOffset`, by re-running the acknowledged calls in offset order on a fresh store. */
async function replayedHash(acked: readonly Acked[], endOffset: number): Promise<string> {
  const reference = await Store.open({ dir: scratch(), module: counterModule, clock: fixedClock });
  try {
    for (const a of [...acked].filter((x) => x.offset <= endOffset).sort((x, y) => x.offset - y.offset)) {
      const r = await reference.call(a.reducer, a.args, testCaller);
      expect(r.offset).toBe(a.offset);
    }
    expect(reference.lastOffset).toBe(endOffset);
    return reference.stateHash();
  } finally {
    await reference.close();
  }
}

async function backupUnderLoad(take: (store: Store, backupDir: string) => Promise<BackupReport>) {
  const storeDir = scratch();
  // Small segments and frequent snapshots: rotation and retention happen during the backup.
  const store = await Store.open({ dir: storeDir, module: counterModule, clock: fixedClock, segmentBytesMax: 8 * 1024, snapshotEveryTx: 150 });
  const writers = startWriters(store, 8);
  await reachOffset(store, 400);
  const startedAt = store.durableOffset;
  const backupDir = path.join(scratch(), 'backup');
  const report = await take(store, backupDir);
  await reachOffset(store, report.manifest.endOffset + 200); // the store kept serving writes
  await writers.stop();
  await store.close();
  return { report, backupDir, acked: writers.acked, startedAt };
}

describe('online backup', () => {
  test('a backup taken through the open store, under concurrent writes, restores elsewhere to the state at its end offset', async () => {
    const { report, backupDir, acked, startedAt } = await backupUnderLoad((store, dir) => backupStore(store, { backupDir: dir, module: counterModule, tenant: 'acme' }));
    expect(report.manifest.source).toBe('store');
    expect(report.manifest.snapshot).not.toBeNull();
    expect(report.manifest.endOffset).toBeGreaterThanOrEqual(startedAt);
    expect(report.manifest.files.some((f) => f.path.startsWith('log/'))).toBe(true);

    const target = path.join(scratch(), 'restored');
    const restored = await restoreBackup(backupDir, target, { module: counterModule, expectedTenant: 'acme' });
    expect(restored.stateHashVerified).toBe(true);
    expect(restored.endOffset).toBe(report.manifest.endOffset);
    expect(restored.stateHash).toBe(await replayedHash(acked, restored.endOffset));

    const reopened = await Store.open({ dir: target, module: counterModule });
    expect(reopened.lastOffset).toBe(report.manifest.endOffset);
    expect(reopened.stateHash()).toBe(report.manifest.stateHash);
    await reopened.close();
  });

  test('a backup read from the files of a store open elsewhere restores to the state at its end offset', async () => {
    const { report, backupDir, acked } = await backupUnderLoad((store, dir) => backupStoreDirectory(store.dir, { backupDir: dir, module: counterModule, tenant: 'acme' }));
    expect(report.manifest.source).toBe('directory');
    const restored = await restoreBackup(backupDir, path.join(scratch(), 'restored'), { module: counterModule });
    expect(restored.stateHash).toBe(await replayedHash(acked, restored.endOffset));
  });

  test('a backup of an empty store restores to an empty store', async () => {
    const store = await Store.open({ dir: scratch(), module: counterModule });
    const backupDir = path.join(scratch(), 'b');
    const report = await backupStore(store, { backupDir, module: counterModule });
    await store.close();
    expect(report.manifest.endOffset).toBe(-1);
    const restored = await restoreBackup(backupDir, path.join(scratch(), 'r'), { module: counterModule });
    expect(restored.endOffset).toBe(-1);
  });
});

describe('restore refuses what does not verify', () => {
  async function smallBackup(): Promise<string> {
    const store = await Store.open({ dir: scratch(), module: counterModule, clock: fixedClock, segmentBytesMax: 4 * 1024 });
    await Promise.all(Array.from({ length: 120 }, (_, i) => store.call('bump', { id: `c${i % 7}`, by: i }, testCaller)));
    await store.snapshot();
    await Promise.all(Array.from({ length: 60 }, (_, i) => store.call('put', { id: `p${i}`, type: 'x', n: i }, testCaller)));
    const backupDir = path.join(scratch(), 'b');
    await backupStore(store, { backupDir, module: counterModule, tenant: 'acme' });
    await store.close();
    return backupDir;
  }

  function flipByte(file: string, at: number): void {
    const buf = readFileSync(file);
    buf[at] = buf[at]! ^ 0x01;
    writeFileSync(file, buf);
  }

  for (const kind of ['log/', 'snapshots/'] as const) {
    test(`a flipped byte in a ${kind === 'log/' ? 'log segment' : 'snapshot file'} is refused, naming the file, and nothing is restored`, async () => {
      const backupDir = await smallBackup();
      const manifest = JSON.parse(readFileSync(path.join(backupDir, backupManifestFileName), 'utf8')) as { files: { path: string; bytes: number }[] };
      const victim = manifest.files.filter((f) => f.path.startsWith(kind)).at(-1)!;
      const victimFile = path.join(backupDir, backupStoreDirName, victim.path);
      flipByte(victimFile, Math.floor(victim.bytes / 2));
      const target = path.join(scratch(), 'restored');
      const failure = await restoreBackup(backupDir, target, { module: counterModule }).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(BackupInvalid);
      expect((failure as BackupInvalid).file).toBe(victimFile);
      expect((failure as Error).message).toContain(victim.path.split('/').at(-1));
      expect(existsSync(target)).toBe(false);
    });
  }

  test('a backup without its manifest (unfinished) is refused', async () => {
    const backupDir = await smallBackup();
    rmSync(path.join(backupDir, backupManifestFileName));
    await expect(restoreBackup(backupDir, path.join(scratch(), 'r'), { module: counterModule })).rejects.toBeInstanceOf(BackupInvalid);
  });

  test('a manifest over backupManifestBytesMax is refused by its size, before it is read; a directory in its place is refused too', async () => {
    const backupDir = await smallBackup();
    const manifest = path.join(backupDir, backupManifestFileName);
    rmSync(manifest);
    writeFileSync(manifest, '');
    truncateSync(manifest, backupManifestBytesMax + 1); // sparse: the size alone must refuse it
    const target = path.join(scratch(), 'r');
    const tooLarge = `${backupManifestFileName} has ${backupManifestBytesMax + 1} bytes, over ${backupManifestBytesMax} (backupManifestBytesMax)`;
    await expect(restoreBackup(backupDir, target, { module: counterModule })).rejects.toThrow(tooLarge);
    const counting = countingFileLayer();
    await expect(readBackupManifest(backupDir, counting)).rejects.toThrow(tooLarge);
    expect(counting.bytesRead).toBe(0);
    rmSync(manifest);
    mkdirSync(manifest);
    await expect(readBackupManifest(backupDir)).rejects.toThrow(`${manifest}: backup.json is a directory, not a regular file`);
    expect(existsSync(target)).toBe(false);
  });

  test("another tenant's backup and a non-empty target are refused", async () => {
    const backupDir = await smallBackup();
    await expect(restoreBackup(backupDir, path.join(scratch(), 'r'), { module: counterModule, expectedTenant: 'other' })).rejects.toMatchObject({ code: 'forbidden' });
    const occupied = scratch();
    writeFileSync(path.join(occupied, 'keep'), 'x');
    await expect(restoreBackup(backupDir, occupied, { module: counterModule })).rejects.toMatchObject({ code: 'conflict' });
  });

  test('without room for twice the backup at the target it is refused before copying, with bytes needed vs free and the hint', async () => {
    const backupDir = await smallBackup();
    const parent = scratch();
    const target = path.join(parent, 'tenants', 'acme');
    const asked: string[] = [];
    const failure = await restoreBackup(backupDir, target, {
      module: counterModule, freeBytesOf: async (dir) => { asked.push(dir); return 1_000; },
    }).then(() => undefined, (error: unknown) => error);
    expect(failure).toBeInstanceOf(MemoryError);
    expect((failure as MemoryError).code).toBe('unavailable');
    const manifest = JSON.parse(readFileSync(path.join(backupDir, backupManifestFileName), 'utf8')) as { files: { bytes: number }[] };
    const neededBytes = 2 * manifest.files.reduce((n, f) => n + f.bytes, 0);
    expect((failure as MemoryError).message).toBe(`not enough free space for this restore at ${parent}: it needs ${neededBytes} bytes free, 1000 are`);
    expect((failure as MemoryError).hint).toBe(restoreSpaceHint);
    expect(asked).toEqual([parent]); // the nearest existing directory on the target's path
    expect(readdirSync(parent)).toEqual([]); // nothing half-restored, no scratch copy
    // With room for twice its size it goes through.
    const restored = await restoreBackup(backupDir, target, { module: counterModule, freeBytesOf: async () => neededBytes });
    expect(restored.stateHashVerified).toBe(true);
  });
});

describe('a backup that fails', () => {
  test('leaves its directory as it found it: a new one is removed, an empty one stays empty', async () => {
    const root = scratch();
    const missingStore = path.join(root, 'no-such-tenant');
    const fresh = path.join(root, 'fresh');
    await expect(backupStoreDirectory(missingStore, { backupDir: fresh, module: counterModule, nowMs: fixedClock() })).rejects.toThrow();
    expect(existsSync(fresh)).toBe(false);
    const empty = path.join(root, 'empty');
    (await import('node:fs')).mkdirSync(empty);
    await expect(backupStoreDirectory(missingStore, { backupDir: empty, module: counterModule, nowMs: fixedClock() })).rejects.toThrow();
    expect((await import('node:fs')).readdirSync(empty)).toEqual([]);
  });

  async function storeWithWrites(root: string): Promise<string> {
    const storeDir = path.join(root, 'store');
    const store = await Store.open({ dir: storeDir, module: counterModule });
    for (let i = 0; i < 20; i++) await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: { i } }, testCaller);
    await store.close();
    return storeDir;
  }

  test('without room for twice its size at the destination it is refused before copying, with bytes needed vs free and the hint', async () => {
    const root = scratch();
    const storeDir = await storeWithWrites(root);
    const backupDir = path.join(root, 'backup');
    const failure = await backupStoreDirectory(storeDir, { backupDir, module: counterModule, nowMs: fixedClock(), freeBytesOf: async () => 1_000 })
      .then(() => undefined, (error: unknown) => error);
    expect(failure).toBeInstanceOf(MemoryError);
    expect((failure as MemoryError).code).toBe('unavailable');
    expect((failure as MemoryError).message).toMatch(/not enough free space for this backup at .*: it needs \d+ bytes free, 1000 are/);
    expect((failure as MemoryError).hint).toBe(backupSpaceHint);
    expect(existsSync(backupDir)).toBe(false);
    // With room for twice its size it goes through.
    const report = await backupStoreDirectory(storeDir, { backupDir, module: counterModule, nowMs: fixedClock(), freeBytesOf: async () => Number.MAX_SAFE_INTEGER });
    expect(report.manifest.endOffset).toBe(19);
  });

  test('a disk that fills up mid-copy (ENOSPC) gets the same hint and leaves no backup behind', async () => {
    const root = scratch();
    const storeDir = await storeWithWrites(root);
    const backupDir = path.join(root, 'backup');
    const faults = new FaultyFileLayer();
    faults.enospcWrites = 1;
    const failure = await backupStoreDirectory(storeDir, { backupDir, module: counterModule, nowMs: fixedClock(), fileLayer: asFileLayer(faults) })
      .then(() => undefined, (error: unknown) => error);
    expect(faults.enospcWrites).toBe(0);
    expect(failure).toBeInstanceOf(MemoryError);
    expect((failure as MemoryError).message).toContain('ran out of space (ENOSPC); nothing of it was kept');
    expect((failure as MemoryError).hint).toBe(backupSpaceHint);
    expect(existsSync(backupDir)).toBe(false);
    expect(readdirSync(root), 'nor its partial copy').toEqual(['store']);
  });
});
