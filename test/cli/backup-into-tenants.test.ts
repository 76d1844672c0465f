/**
 * `backup TENANT DIR` with DIR among the tenants' stores (DATA/tenants/...) is refused before
 * anything is written: a backup there would be taken for a tenant's store. The real CLI on a
 * real memory store.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-into-tenants-'));
const dataDir = path.join(work, 'data');
beforeAll(() => writeMemoryStore(path.join(dataDir, 'tenants', 'acme'), 20, 64 * 1024));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('a backup into DATA/tenants/NEW, into a store, or onto tenants/ itself is refused, nothing written', async () => {
  const destinations = [path.join(dataDir, 'tenants', 'acme-backup'), path.join(dataDir, 'tenants', 'acme', 'backup'), path.join(dataDir, 'tenants')];
  for (const dest of destinations) {
    const r = await cli(['backup', 'acme', dest, '--json', '--data-dir', dataDir]);
    expect(r.code, r.stderr).not.toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'invalid_argument', message: expect.stringContaining("where every directory is taken for a tenant's store") });
  }
  expect(existsSync(destinations[0]!)).toBe(false);
  expect(existsSync(destinations[1]!)).toBe(false);
  const listed = await cli(['tenants', 'list', '--json', '--data-dir', dataDir]);
  expect(listed.code, listed.stderr).toBe(0);
  expect(JSON.stringify(JSON.parse(listed.stdout))).not.toContain('acme-backup');
});
