/**
 * A hint that names a command names it with the data directory the run used: pasted as printed
 * after `--data-dir D`, it must act on D, not on ./data or IOBOXX_DATA_DIR (where a tenant of the
 * same name may have a store that `tenants delete` would move to the trash).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-data-dir-hints-'));

beforeAll(async () => {
  await writeMemoryStore(path.join(dataDir, 'tenants', 'acme'), 10, 64 * 1024);
  // Known, with no store left: a vanished store.
  mkdirSync(path.join(dataDir, 'known-tenants'), { recursive: true });
  writeFileSync(path.join(dataDir, 'known-tenants', 'ghost'), '');
});
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe.concurrent('hints after --data-dir D name --data-dir D', () => {
  test('tenants forget of a tenant whose store is in place names `tenants delete` on D', async () => {
    const r = await cli(['tenants', 'forget', 'acme', '--yes', '--data-dir', dataDir]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`\`ioboxx-memory tenants delete acme --yes --data-dir ${dataDir}\``);
  });

  test('restore onto a tenant whose store is in place says so and names `tenants delete` on D; the store is left as it was', async () => {
    const backupDir = path.join(dataDir, '..', `${path.basename(dataDir)}-restore-source`);
    expect((await cli(['backup', 'acme', backupDir, '--data-dir', dataDir])).code).toBe(0);
    const r = await cli(['restore', backupDir, 'acme', '--data-dir', dataDir]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: tenant acme already has a store in ${path.join(dataDir, 'tenants', 'acme')}\n`);
    expect(r.stderr).toContain(`\`ioboxx-memory tenants delete acme --yes --data-dir ${dataDir}\`, then restore again`);
    expect(existsSync(path.join(dataDir, 'tenants', 'acme', 'log'))).toBe(true);
    rmSync(backupDir, { recursive: true, force: true });
  });

  test('tenants delete of an unknown tenant names `tenants list` on D', async () => {
    const r = await cli(['tenants', 'delete', 'nobody', '--yes', '--data-dir', dataDir]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`\`ioboxx-memory tenants list --data-dir ${dataDir}\``);
  });

  test('backup of a tenant with no store in D says so and names `tenants list` on D; nothing is written', async () => {
    const out = path.join(dataDir, '..', `${path.basename(dataDir)}-backup`);
    const r = await cli(['backup', 'nobody', out, '--data-dir', dataDir]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: no store of tenant nobody in ${dataDir}`);
    expect(r.stderr).toContain(`\`ioboxx-memory tenants list --data-dir ${dataDir}\``);
    expect(existsSync(out)).toBe(false);
  });

  test('tenants list shows a vanished store with `tenants forget` on D', async () => {
    const r = await cli(['tenants', 'list', '--data-dir', dataDir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`VANISHED (directory missing): restore it, or \`tenants forget ghost --yes --data-dir ${dataDir}\``);
  });

  test('a data directory with a space in its name is quoted for the shell', async () => {
    const spaced = path.join(dataDir, 'with space');
    mkdirSync(spaced); // a data directory that exists: a missing one is refused as such first
    const r = await cli(['tenants', 'delete', 'nobody', '--yes', '--data-dir', spaced]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`\`ioboxx-memory tenants list --data-dir '${spaced}'\``);
  });
});

describe.concurrent('tenants list of a data directory that is not one', () => {
  test('a missing one is said as such (exit 1), not listed as empty', async () => {
    const missing = path.join(dataDir, 'no-such-data');
    const r = await cli(['tenants', 'list', '--check', '--json', '--data-dir', missing]);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ ok: false, code: 'not_found', message: `data directory ${missing} does not exist`, hint: expect.stringContaining('IOBOXX_DATA_DIR') });
  });

  test('a file is said as such, not as an errno', async () => {
    const file = path.join(dataDir, 'known-tenants', 'ghost');
    const r = await cli(['tenants', 'list', '--data-dir', file]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: data directory ${file} is not a directory`);
  });
});
