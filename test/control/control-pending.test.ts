/**
 * Which marked tenants a start drains: a store another live process holds (a stdio server on the
 * same data dir) is left to that process; a stale LOCK does not hold it back.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { controlPendingToDrain, markControlPending } from '../../server/control/control-pending.js';
import { tenantDir } from '../../server/tenants/tenant-dir.js';
import { lockFileName } from '../../storage/store-lock.js';

const dataDir = mkdtempSync(join(tmpdir(), 'ioboxx-control-pending-'));
const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
afterAll(() => {
  holder.kill();
  rmSync(dataDir, { recursive: true, force: true });
});

function lockedBy(tenant: string, pid: number): void {
  const dir = tenantDir(dataDir, tenant);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, lockFileName), String(pid));
}

// Before, a start drained a tenant a stdio server held: refused, and retried every second until that server ended.
test('a start drains the marked tenants, except a store another live process holds', async () => {
  for (const tenant of ['acme', 'held', 'stale']) await markControlPending(dataDir, tenant);
  lockedBy('held', holder.pid!);
  lockedBy('stale', 2 ** 22 + 1); // above pid_max's default ceiling: no such process
  expect(await controlPendingToDrain(dataDir)).toEqual(['acme', 'stale']);
});
