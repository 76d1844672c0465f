/**
 * An operator restores a tenant whose store directory was deleted (an `rm -rf`, a botched volume)
 * while a server still has that store open, idle: nothing noticed the deletion, since only an
 * acknowledgement looks. The LOCK went with the directory, so restore puts the backup in place.
 * The old store, snapshotting and closing later (the server's idle close), must not write into the
 * directory that is now the restored store's: no snapshot, no checkpoint, no retention, and not
 * the LOCK another process took there. The restored store then opens with the backup's state
 * (the LOCK naming an ended process by then is taken over).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { restoreBackup } from '../../storage/backup/restore.js';
import { backupStore } from '../../storage/backup/take-backup.js';
import { Store } from '../../storage/store.js';
import { processStartTime } from '../../storage/io/process-runs.js';
import { lockHolder } from '../../storage/store-lock.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { childExit } from '../support/child-exit.js';

const dirs: string[] = [];
function scratch(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-restore-under-open-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

test('an idle store whose directory was deleted and restored from a backup snapshots and closes without touching the restored store', async () => {
  const dir = path.join(scratch(), 'tenants', 'acme');
  const old = await Store.open({ dir, module: counterModule, segmentBytesMax: 4 * 1024 });
  for (let i = 0; i < 30; i++) await old.call('bump', { id: `c${i % 5}`, by: i }, testCaller);
  const backupDir = path.join(scratch(), 'backup');
  const backup = await backupStore(old, { backupDir, module: counterModule, tenant: 'acme' });
  for (let i = 0; i < 60; i++) await old.call('put', { id: `p${i}`, type: 'x', n: i }, testCaller);

  rmSync(dir, { recursive: true, force: true });
  const restored = await restoreBackup(backupDir, dir, { module: counterModule, expectedTenant: 'acme' });
  expect(restored.endOffset).toBe(backup.manifest.endOffset);

  // Another process has the restored store open meanwhile (an operator's `store verify`, say): its LOCK.
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  try {
    writeFileSync(path.join(dir, 'LOCK'), `${other.pid} ${processStartTime(other.pid!)}`);
    // The server's idle close: a snapshot first, then the close.
    await old.snapshot().catch(() => undefined);
    await old.close().catch(() => undefined);
    expect(lockHolder(dir), "the old store's close removed the LOCK of the process that holds the restored store").toBe(other.pid);
  } finally {
    // Ended before the reopen below: a kill is delivered, not done, when kill() returns.
    other.kill('SIGKILL');
    await childExit(other);
  }

  const reopened = await Store.open({ dir, module: counterModule });
  try {
    expect({ lastOffset: reopened.lastOffset, stateHash: reopened.stateHash() }).toEqual({ lastOffset: backup.manifest.endOffset, stateHash: backup.manifest.stateHash });
  } finally {
    await reopened.close();
  }
});
