/**
 * A backup read from a store's files says what the open would say: it refuses a closed store
 * whose log lost acknowledged transactions (as the open does, same file and byte), passes over
 * a snapshot the open would skip, and never names its own scratch copy as the damaged store.
 * Wrong paths get plain answers; a restore killed mid-copy leaves nothing the next one keeps.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { restoreBackup } from '../../storage/backup/restore.js';
import { scratchDirOf } from '../../storage/backup/scratch-dir.js';
import { backupStoreDirectory } from '../../storage/backup/take-backup.js';
import { DamagedStore, MemoryError } from '../../storage/errors.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const dirs: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-refusals-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A closed store of `puts` transactions (0..puts-1) in several segments, with snapshots after `snapshotAfter` puts each. */
async function closedStore(puts = 60, snapshotAfter: readonly number[] = [20, 45]): Promise<{ dir: string; stateHash: string }> {
  const dir = path.join(scratch(), 'store');
  const store = await Store.open({ dir, module: counterModule, segmentBytesMax: 2048 });
  for (let i = 0; i < puts; i++) {
    await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: { text: `object ${i}` } }, testCaller);
    if (snapshotAfter.includes(i + 1)) await store.snapshot();
  }
  const stateHash = store.stateHash();
  await store.close();
  return { dir, stateHash };
}

function segments(dir: string): string[] {
  return readdirSync(path.join(dir, 'log')).filter((n) => n.endsWith('.log')).sort().map((n) => path.join(dir, 'log', n));
}

function snapshotDirs(dir: string): string[] {
  return readdirSync(path.join(dir, 'snapshots')).sort().map((n) => path.join(dir, 'snapshots', n));
}

/** Flip one byte inside the last frame of the last segment. */
function flipInLastFrame(dir: string): void {
  const last = segments(dir).at(-1)!;
  const bytes = readFileSync(last);
  bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0xff;
  writeFileSync(last, bytes);
}

/** Rewrite a snapshot's manifest outside its file hashes (the open's own checks find it). */
function alterManifest(snapshotDir: string, change: (m: { tables: Record<string, number>; stateHash: string }) => void): void {
  const file = path.join(snapshotDir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8'));
  change(manifest);
  writeFileSync(file, JSON.stringify(manifest, null, 2));
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  return promise.then(() => { throw new Error('expected a refusal'); }, (error: Error) => error);
}

describe('a backup of a store no process holds', () => {
  test('refuses when a bad frame in the last segment cut acknowledged transactions (checkpoint past it), naming the file and byte the open names', async () => {
    const { dir } = await closedStore();
    flipInLastFrame(dir);
    const opened = await rejection(Store.open({ dir, module: counterModule }));
    const backupDir = path.join(scratch(), 'backup');
    const refused = await rejection(backupStoreDirectory(dir, { backupDir, module: counterModule }));
    expect(refused, 'the backup must not report offsets 0..58 as the whole store: 59 was acknowledged').toBeInstanceOf(DamagedStore);
    expect(refused.message).toBe(opened.message);
    expect(refused.message).toContain('transactions 59..59 were acknowledged and are not in the log');
    expect(existsSync(backupDir)).toBe(false);
  });

  test('still cuts the torn tail of a store that crashed (no checkpoint past it): the backup ends before the bad frame', async () => {
    const { dir } = await closedStore();
    flipInLastFrame(dir);
    rmSync(path.join(dir, 'log', 'checkpoint.json'));
    const report = await backupStoreDirectory(dir, { backupDir: path.join(scratch(), 'backup'), module: counterModule });
    expect(report.manifest.endOffset).toBe(58);
  });

  test.each([
    ['a table count', (m: { tables: Record<string, number> }) => { m.tables.objects! += 1; }],
    ['its state hash', (m: { stateHash: string }) => { m.stateHash = '1'.repeat(64); }],
  ] as const)('passes over a newest snapshot whose manifest the open rejects (%s), starting from the older one as the open does', async (_what, change) => {
    const { dir, stateHash } = await closedStore();
    const [older, newest] = snapshotDirs(dir);
    alterManifest(newest!, change);
    const backupDir = path.join(scratch(), 'backup');
    const report = await backupStoreDirectory(dir, { backupDir, module: counterModule });
    expect(report.manifest.snapshot?.offset).toBe(Number(path.basename(older!)));
    expect(report.snapshotsSkipped).toHaveLength(1);
    expect(report.snapshotsSkipped[0]).toContain(newest);
    expect(report.manifest.stateHash).toBe(stateHash);
    const restored = await restoreBackup(backupDir, path.join(scratch(), 'restored'), { module: counterModule });
    expect(restored.stateHash).toBe(stateHash);
  });

  test.each([
    ['state.msgpack a directory', (snapshot: string) => { rmSync(path.join(snapshot, 'state.msgpack')); mkdirSync(path.join(snapshot, 'state.msgpack')); }],
    ['state.json a directory', (snapshot: string) => { rmSync(path.join(snapshot, 'state.json')); mkdirSync(path.join(snapshot, 'state.json')); }],
    ['state.json missing', (snapshot: string) => rmSync(path.join(snapshot, 'state.json'))],
    ['manifest.json not JSON', (snapshot: string) => writeFileSync(path.join(snapshot, 'manifest.json'), '{"format":')],
    ['a file in its directory\'s place', (snapshot: string) => { rmSync(snapshot, { recursive: true }); writeFileSync(snapshot, 'x'); }],
  ] as const)('passes over a damaged newest snapshot (%s), starting from the older one, and says so', async (_what, damage) => {
    const { dir, stateHash } = await closedStore();
    const [older, newest] = snapshotDirs(dir);
    damage(newest!);
    const backupDir = path.join(scratch(), 'backup');
    const report = await backupStoreDirectory(dir, { backupDir, module: counterModule });
    expect(report.manifest.snapshot?.offset).toBe(Number(path.basename(older!)));
    expect(report.snapshotsSkipped, 'the operator hears of the damaged snapshot, as store verify says it').toHaveLength(1);
    expect(report.snapshotsSkipped[0]).toContain(newest);
    expect(report.manifest.stateHash).toBe(stateHash);
  });

  test("refusing a store with no usable snapshot, names the store's files, never the backup's own directory", async () => {
    const { dir } = await closedStore(60, [20, 45, 50]); // retention keeps 45 and 50 and deletes the log below 45
    for (const snapshot of snapshotDirs(dir)) alterManifest(snapshot, (m) => { m.tables.objects! += 1; });
    expect(segments(dir).map((s) => path.basename(s))[0]).not.toBe('00000000000000000000.log');
    const backupDir = path.join(scratch(), 'backup');
    const refused = await rejection(backupStoreDirectory(dir, { backupDir, module: counterModule }));
    expect(refused).toBeInstanceOf(DamagedStore);
    expect((refused as DamagedStore).file.startsWith(dir)).toBe(true);
    expect(refused.message).not.toContain(backupDir);
  });
});

describe('wrong paths get plain answers', () => {
  test('a backup into a path that is a file, or below one, is refused as such (no raw ENOTDIR)', async () => {
    const { dir } = await closedStore(5, []);
    const file = path.join(scratch(), 'a-file');
    writeFileSync(file, 'x');
    for (const target of [file, path.join(file, 'below')]) {
      const refused = await rejection(backupStoreDirectory(dir, { backupDir: target, module: counterModule }));
      expect(refused).toBeInstanceOf(MemoryError);
      expect((refused as MemoryError).code).toBe('invalid_argument');
      expect(refused.message).toContain('is a file');
    }
    expect(readFileSync(file, 'utf8')).toBe('x');
  });

  test("a backup into a directory inside the tenant's own store is refused before anything is written", async () => {
    const { dir } = await closedStore(5, []);
    for (const target of [path.join(dir, 'backups', 'b1'), path.join(dir, 'snapshots'), dir]) {
      const before = existsSync(target) ? readdirSync(target).length : -1;
      const refused = await rejection(backupStoreDirectory(dir, { backupDir: target, module: counterModule }));
      expect(refused).toBeInstanceOf(MemoryError);
      expect(refused.message).toContain('inside the store it backs up');
      expect(existsSync(target) ? readdirSync(target).length : -1).toBe(before);
    }
  });

  test('a restore from a directory that does not exist says so (not_found), not that a backup is damaged', async () => {
    const missing = path.join(scratch(), 'no-such-backup');
    const refused = await rejection(restoreBackup(missing, path.join(scratch(), 'r'), { module: counterModule }));
    expect(refused).toBeInstanceOf(MemoryError);
    expect((refused as MemoryError).code).toBe('not_found');
    expect(refused.message).toBe(`backup directory ${missing} does not exist`);
  });
});

test('a restore removes the scratch copy a killed restore into the same target left behind; a running one keeps its own', async () => {
  const { dir, stateHash } = await closedStore(10, []);
  const backupDir = path.join(scratch(), 'backup');
  await backupStoreDirectory(dir, { backupDir, module: counterModule });
  const tenants = scratch();
  const target = path.join(tenants, 'acme');
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!; // exited: its pid names no process now
  const dead = scratchDirOf(target, 'restore', deadPid);
  const alive = scratchDirOf(target, 'restore', process.ppid); // the test runner's parent: it runs
  for (const leftover of [dead, alive]) {
    mkdirSync(path.join(leftover, 'log'), { recursive: true });
    writeFileSync(path.join(leftover, 'log', 'big.log'), Buffer.alloc(4096));
  }
  const restored = await restoreBackup(backupDir, target, { module: counterModule });
  expect(restored.stateHash).toBe(stateHash);
  expect(existsSync(dead), `${dead} of exited process ${deadPid} is still there`).toBe(false);
  expect(statSync(alive).isDirectory()).toBe(true);
});
