/**
 * Where a backup goes, and what restore says of a directory that is not a whole backup: DEST is
 * written as DEST.partial-<pid> and renamed into place (or, an empty DEST the operator made, filled
 * from DEST/.partial-<pid>, its manifest last), so what sits at DEST is named for what it is (a
 * backup, an unfinished one); the partial copies killed backups left are removed (DEST's own) or
 * reported (others'), and one still being written refuses a second writer. Restore names what
 * is missing: the manifest, or a file the manifest lists.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { backupManifestFileName, backupStoreDirName } from '../../storage/backup/backup-manifest.js';
import { restoreBackup } from '../../storage/backup/restore.js';
import { innerScratchDirOf, removeCommand, scratchDirOf } from '../../storage/backup/scratch-dir.js';
import { backupStoreDirectory } from '../../storage/backup/take-backup.js';
import { BackupInvalid } from '../../storage/backup/verify-backup.js';
import { MemoryError } from '../../storage/errors.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-destination-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const scratch = () => mkdtempSync(path.join(work, 'case-'));

async function closedStore(): Promise<string> {
  const dir = path.join(scratch(), 'store');
  const store = await Store.open({ dir, module: counterModule });
  for (let i = 0; i < 10; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
  await store.close();
  return dir;
}

/** A pid that names no process now: one that has exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

/** A partial copy as a killed backup into `target` by `pid` leaves it: the store copied, no manifest. */
function partialCopy(target: string, pid: number): string {
  const dir = scratchDirOf(target, 'backup', pid);
  mkdirSync(path.join(dir, backupStoreDirName, 'log'), { recursive: true });
  writeFileSync(path.join(dir, backupStoreDirName, 'log', '00000000000000000000.log'), Buffer.alloc(4096));
  return dir;
}

async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string; hint?: string }> {
  return promise.then(() => { throw new Error('expected a refusal'); }, (error: Error) => error);
}

test('a DEST holding an unfinished backup (store/ without backup.json) is refused as such, with the command that removes it', async () => {
  const store = await closedStore();
  const dest = path.join(scratch(), 'backup');
  mkdirSync(path.join(dest, backupStoreDirName, 'log'), { recursive: true });
  const refused = await rejection(backupStoreDirectory(store, { backupDir: dest, module: counterModule }));
  expect(refused).toBeInstanceOf(MemoryError);
  expect(refused.message).toBe(`backup directory ${dest} holds an unfinished backup: its store/ but no backup.json (the backup writing it was interrupted)`);
  expect(refused.hint).toBe(`remove it and run the backup again: ${removeCommand(dest)}`);
  expect(readdirSync(dest)).toEqual([backupStoreDirName]);
});

test('a DEST already holding a backup is refused as one: a backup never overwrites another', async () => {
  const store = await closedStore();
  const dest = path.join(scratch(), 'backup');
  await backupStoreDirectory(store, { backupDir: dest, module: counterModule });
  const manifest = readFileSync(path.join(dest, backupManifestFileName));
  const refused = await rejection(backupStoreDirectory(store, { backupDir: dest, module: counterModule }));
  expect(refused.message).toBe(`backup directory ${dest} already holds a backup`);
  expect(readFileSync(path.join(dest, backupManifestFileName))).toEqual(manifest);
});

test('a partial copy beside DEST whose process still runs refuses the backup, naming the process and the command that removes the copy', async () => {
  const store = await closedStore();
  const dest = path.join(scratch(), 'backup');
  const running = partialCopy(dest, process.ppid); // the test runner's parent: it runs
  const refused = await rejection(backupStoreDirectory(store, { backupDir: dest, module: counterModule }));
  expect(refused).toMatchObject({ code: 'conflict', message: `a backup into ${dest} is being written by process ${process.ppid} (in ${running})` });
  expect(refused.hint).toContain(removeCommand(running));
  expect(existsSync(dest)).toBe(false);
  expect(existsSync(running)).toBe(true);
});

test("the partial copy a killed backup into DEST left is removed and reported; another directory's is reported and left alone", async () => {
  const store = await closedStore();
  const parent = scratch();
  const dest = path.join(parent, 'backup');
  const dead = partialCopy(dest, deadPid());
  const elsewhere = partialCopy(path.join(parent, 'yesterday'), deadPid());
  const report = await backupStoreDirectory(store, { backupDir: dest, module: counterModule });
  expect(report.partialsRemoved).toEqual([dead]);
  expect(report.partialsElsewhere).toEqual([elsewhere]);
  expect(readdirSync(parent).sort()).toEqual(['backup', path.basename(elsewhere)]);
  expect(readdirSync(dest).sort()).toEqual([backupManifestFileName, backupStoreDirName]);
});

test('an empty DEST the operator made is filled in place (same directory, same mode), from a scratch inside it', async () => {
  const store = await closedStore();
  const dest = path.join(scratch(), 'backup');
  mkdirSync(dest, { mode: 0o750 });
  const before = statSync(dest);
  await backupStoreDirectory(store, { backupDir: dest, module: counterModule });
  const after = statSync(dest);
  expect({ ino: after.ino, mode: after.mode }).toEqual({ ino: before.ino, mode: before.mode });
  expect(readdirSync(dest).sort()).toEqual([backupManifestFileName, backupStoreDirName]);
});

test('the partial copy a killed backup left inside an empty DEST: restore names it, the next backup removes it', async () => {
  const store = await closedStore();
  const dest = path.join(scratch(), 'backup');
  const pid = deadPid();
  const inner = innerScratchDirOf(dest, 'backup', pid);
  mkdirSync(path.join(inner, backupStoreDirName, 'log'), { recursive: true });
  const refused = await rejection(restoreBackup(dest, path.join(scratch(), 'r'), { module: counterModule }));
  expect(refused.message).toBe(`backup does not verify: ${dest}/${backupManifestFileName}: missing: ${dest} is an unfinished backup: process ${pid} was interrupted writing it (its partial copy: ${inner})`);
  const report = await backupStoreDirectory(store, { backupDir: dest, module: counterModule });
  expect(report.partialsRemoved).toEqual([inner]);
  expect(readdirSync(dest).sort()).toEqual([backupManifestFileName, backupStoreDirName]);
});

test('a backup killed between moving its store/ up into an empty DEST and its manifest: restore refuses it, the next backup removes both and succeeds', async () => {
  const store = await closedStore();
  const dest = path.join(scratch(), 'backup');
  const pid = deadPid();
  const inner = innerScratchDirOf(dest, 'backup', pid);
  // What the killed run left: its store/ moved up into DEST, its manifest still in its scratch.
  mkdirSync(path.join(dest, backupStoreDirName, 'log'), { recursive: true });
  mkdirSync(inner, { recursive: true });
  writeFileSync(path.join(inner, backupManifestFileName), '{}');
  const refused = await rejection(restoreBackup(dest, path.join(scratch(), 'r'), { module: counterModule }));
  expect(refused.message).toBe(`backup does not verify: ${dest}/${backupManifestFileName}: missing: ${dest} is an unfinished backup: process ${pid} was interrupted writing it (its partial copy: ${inner})`);
  const report = await backupStoreDirectory(store, { backupDir: dest, module: counterModule });
  expect(report.partialsRemoved).toEqual([inner, path.join(dest, backupStoreDirName)]);
  expect(readdirSync(dest).sort()).toEqual([backupManifestFileName, backupStoreDirName]);
  expect((await restoreBackup(dest, path.join(scratch(), 'restored'), { module: counterModule })).endOffset).toBe(9);
});

test('a DEST that is a symbolic link to an empty directory: the backup goes into that directory, the link stays', async () => {
  const store = await closedStore();
  const real = path.join(scratch(), 'real');
  mkdirSync(real);
  const link = path.join(scratch(), 'link');
  symlinkSync(real, link);
  const report = await backupStoreDirectory(store, { backupDir: link, module: counterModule });
  expect(report.backupDir).toBe(link);
  expect(lstatSync(link).isSymbolicLink()).toBe(true);
  expect(readdirSync(real).sort()).toEqual([backupManifestFileName, backupStoreDirName]);
});

test('restore of an unfinished backup (store/, no backup.json) names the missing manifest and says the backup was interrupted', async () => {
  const dir = path.join(scratch(), 'backup');
  mkdirSync(path.join(dir, backupStoreDirName, 'log'), { recursive: true });
  const refused = await rejection(restoreBackup(dir, path.join(scratch(), 'r'), { module: counterModule }));
  expect(refused).toBeInstanceOf(BackupInvalid);
  expect(refused.message).toBe(`backup does not verify: ${dir}/${backupManifestFileName}: missing: ${dir} is an unfinished backup (its store/ was written, but not its manifest, which is written last: the backup was interrupted)`);
  expect(refused.hint).toContain(removeCommand(dir));
});

test('restore of a directory that is no backup at all says so, not that a backup is unfinished', async () => {
  const dir = scratch();
  writeFileSync(path.join(dir, 'notes.txt'), 'x');
  const refused = await rejection(restoreBackup(dir, path.join(scratch(), 'r'), { module: counterModule }));
  expect(refused.message).toBe(`backup does not verify: ${dir}/${backupManifestFileName}: missing: ${dir} is not a backup directory (no backup.json, no store/)`);
});

test('restore names a file the manifest lists but the backup lacks as missing, and restores nothing', async () => {
  const store = await closedStore();
  const dest = path.join(scratch(), 'backup');
  const { manifest } = await backupStoreDirectory(store, { backupDir: dest, module: counterModule });
  const lost = manifest.files.at(-1)!;
  const file = path.join(dest, backupStoreDirName, lost.path);
  rmSync(file);
  const target = path.join(scratch(), 'r');
  const refused = await rejection(restoreBackup(dest, target, { module: counterModule }));
  expect(refused.message).toBe(`backup does not verify: ${file}: missing: the manifest lists it (${lost.bytes} bytes), so the backup is incomplete`);
  expect(existsSync(target)).toBe(false);
});
