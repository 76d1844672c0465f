/**
 * A backup's manifest (backup.json) is the one file no other file vouches for: it carries its own
 * SHA-256, so any damage to it is refused as damage of backup.json, before anything it lists or
 * says (a file's hash or path, the tables, the tenant) is believed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { backupManifestFileName } from '../../storage/backup/backup-manifest.js';
import { restoreBackup } from '../../storage/backup/restore.js';
import { backupStore } from '../../storage/backup/take-backup.js';
import { BackupInvalid, readBackupManifest } from '../../storage/backup/verify-backup.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

let root: string;
let backupDir: string;
let manifestFile: string;
let pristine: Buffer;
beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-manifest-'));
  const store = await Store.open({ dir: path.join(root, 'store'), module: counterModule });
  for (let i = 0; i < 30; i++) await store.call('bump', { id: `c${i % 5}`, by: i }, testCaller);
  await store.snapshot();
  for (let i = 0; i < 10; i++) await store.call('put', { id: `p${i}`, type: 'x', n: i }, testCaller);
  backupDir = path.join(root, 'backup');
  await backupStore(store, { backupDir, module: counterModule, tenant: 'acme' });
  await store.close();
  manifestFile = path.join(backupDir, backupManifestFileName);
  pristine = readFileSync(manifestFile);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

test('every single-bit flip anywhere in backup.json is refused as damage of backup.json', async () => {
  const accepted: string[] = [];
  const blamedElsewhere: string[] = [];
  for (let at = 0; at < pristine.length; at++) {
    const damaged = Buffer.from(pristine);
    damaged[at] = damaged[at]! ^ (1 << (at % 8));
    writeFileSync(manifestFile, damaged);
    const outcome = await readBackupManifest(backupDir).then(() => undefined, (error: unknown) => error);
    const where = `byte ${at} (${JSON.stringify(String.fromCharCode(pristine[at]!))})`;
    if (outcome === undefined) accepted.push(where);
    else if (!(outcome instanceof BackupInvalid) || outcome.file !== manifestFile) blamedElsewhere.push(`${where}: ${(outcome as Error).message}`);
  }
  writeFileSync(manifestFile, pristine);
  expect(accepted, 'flips the manifest read accepted').toEqual([]);
  expect(blamedElsewhere, 'flips refused as something other than damage of backup.json').toEqual([]);
});

test("a flipped digit of a listed file's SHA-256 is refused by restore naming backup.json, not the file it lists", async () => {
  const manifest = JSON.parse(pristine.toString('utf8')) as { files: { sha256: string }[] };
  const digest = manifest.files[0]!.sha256;
  const at = pristine.indexOf(digest) + 7;
  const damaged = Buffer.from(pristine);
  damaged[at] = damaged[at] === 0x30 ? 0x31 : 0x30; // another hex digit
  writeFileSync(manifestFile, damaged);
  try {
    const target = path.join(root, 'restored');
    const refused = await restoreBackup(backupDir, target, { module: counterModule }).then(() => undefined, (error: unknown) => error);
    expect(refused).toBeInstanceOf(BackupInvalid);
    expect((refused as BackupInvalid).file).toBe(manifestFile);
    expect((refused as BackupInvalid).message).toBe(`backup does not verify: ${manifestFile}: does not match its own SHA-256 (manifestSha256): the manifest is damaged`);
    expect((refused as BackupInvalid).hint).toContain('restore from another copy of it');
  } finally {
    writeFileSync(manifestFile, pristine);
  }
  // The undamaged manifest restores.
  expect((await restoreBackup(backupDir, path.join(root, 'restored-whole'), { module: counterModule })).stateHashVerified).toBe(true);
});

test('a manifest of format 1 (written before manifests carried their own SHA-256) still restores', async () => {
  const { manifestSha256: _, ...content } = JSON.parse(pristine.toString('utf8')) as Record<string, unknown>;
  writeFileSync(manifestFile, JSON.stringify({ ...content, format: 1 }, null, 2));
  try {
    expect((await restoreBackup(backupDir, path.join(root, 'restored-format-1'), { module: counterModule })).stateHashVerified).toBe(true);
  } finally {
    writeFileSync(manifestFile, pristine);
  }
});
