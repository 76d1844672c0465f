/**
 * The edges of `store inspect` and `tenants list`: a segment a live writer's retention removes
 * between listing and reading is read again from a fresh listing, never an error or damage; one
 * store that cannot be listed is its own problem row, the others still listed; a symlink in a
 * tenant's place is said to be one (not a vanished store); with --json a usage error is one
 * object on stdout and every successful store command's object has "ok":true.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TenantRow } from '../../server/cli/tenant-commands.js';
import { inspectAttemptsMax, inspectStore } from '../../storage/inspect.js';
import type { FileLayer } from '../../storage/io/file-layer.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-inspect-edges-'));
const store = path.join(work, 'store');

beforeAll(async () => {
  await writeMemoryStore(store, 300, 16 * 1024);
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The node file layer, but opening `file` fails with ENOENT the first `times` times, as if retention removed it just then. */
function vanishing(file: string, times: number): FileLayer {
  let left = times;
  return new Proxy(nodeFileLayer, {
    get(target, key, receiver) {
      if (key !== 'open') return Reflect.get(target, key, receiver) as unknown;
      return async (f: string, flags: 'r') => {
        if (path.resolve(f) === file && left-- > 0) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${f}'`), { code: 'ENOENT' });
        return target.open(f, flags);
      };
    },
  });
}

describe.concurrent('store inspect beside retention', () => {
  test('a segment removed between listing and reading is read again, no problem and no error', async () => {
    const first = path.join(store, 'log', readdirSync(path.join(store, 'log')).filter((f) => f.endsWith('.log')).sort()[0]!);
    const report = await inspectStore(store, vanishing(first, 1));
    expect(report.changing).toBeUndefined();
    expect(report.segments.filter((s) => s.problem)).toEqual([]);
    expect(report.segments[0]!.file).toBe(path.relative(store, first));
  });

  test('files that keep vanishing: the store is reported as changing, not damaged and not an error', async () => {
    const first = path.join(store, 'log', readdirSync(path.join(store, 'log')).filter((f) => f.endsWith('.log')).sort()[0]!);
    const report = await inspectStore(store, vanishing(first, inspectAttemptsMax));
    expect(report.changing).toContain('files were removed while read');
    expect(report.segments.filter((s) => s.problem)).toEqual([]);
  });
});

describe('tenants list', () => {
  test('a store whose log cannot be listed is a problem row under --check, the others listed, exit 3', async () => {
    const data = path.join(work, 'data-unlistable');
    cpSync(store, path.join(data, 'tenants', 'aa'), { recursive: true });
    cpSync(store, path.join(data, 'tenants', 'cc'), { recursive: true });
    mkdirSync(path.join(data, 'tenants', 'bb'));
    writeFileSync(path.join(data, 'tenants', 'bb', 'log'), 'not a directory'); // listing its segments fails (ENOTDIR)
    const r = await cli(['tenants', 'list', '--check', '--json', '--data-dir', data]);
    expect(r.code, r.stderr).toBe(3);
    const rows = (JSON.parse(r.stdout) as { tenants: TenantRow[] }).tenants;
    expect(rows.map((row) => row.tenant)).toEqual(['aa', 'bb', 'cc']);
    expect(rows[1]).toMatchObject({ tenant: 'bb', problem: expect.stringContaining('ENOTDIR') });
    expect(rows[0]).toMatchObject({ check: { ok: true } });
    expect(rows[2]).toMatchObject({ check: { ok: true } });
  }, 60_000);

  test('a symlink in a tenant\'s place is said to be one, with what to do, not "vanished"; --check exits 3', async () => {
    const data = path.join(work, 'data-symlink');
    mkdirSync(path.join(data, 'tenants'), { recursive: true });
    mkdirSync(path.join(data, 'known-tenants'), { recursive: true });
    writeFileSync(path.join(data, 'known-tenants', 'acme'), '');
    symlinkSync(store, path.join(data, 'tenants', 'acme'));
    const r = await cli(['tenants', 'list', '--check', '--data-dir', data]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).not.toContain('VANISHED');
    expect(r.stdout).toContain(`PROBLEM: tenant directory ${path.join(data, 'tenants', 'acme')} is not a plain directory but a symlink to ${store}: the server refuses it as unsafe`);
    expect(r.stdout).toContain('move the link aside and move the directory it points to into its place');
  }, 60_000);
});

describe.concurrent('--json objects', () => {
  test('a usage error with --json is one object on stdout, exit 2', async () => {
    const r = await cli(['store', 'verify', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'usage', message: expect.stringContaining("missing required argument 'dir'") });
    const unknown = await cli(['store', 'inspect', '--json', '--bogus', store]);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ ok: false, code: 'usage', message: expect.stringContaining('--bogus') });
  });

  test('store snapshot of a store with no transaction says there is nothing to snapshot, and writes none', async () => {
    const dir = path.join(work, 'empty-store');
    mkdirSync(path.join(dir, 'log'), { recursive: true });
    const text = await cli(['store', 'snapshot', dir]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('nothing to snapshot: the store holds no transaction yet');
    expect(JSON.parse((await cli(['store', 'snapshot', dir, '--json'])).stdout)).toMatchObject({ ok: true, written: false });
    const snapshots = path.join(dir, 'snapshots');
    expect(existsSync(snapshots) ? readdirSync(snapshots).filter((name) => /^\d+$/.test(name)) : []).toEqual([]);
  });

  test.each(['verify', 'inspect', 'snapshot', 'repair'])('store %s --json that succeeds says "ok":true', async (command) => {
    const dir = path.join(work, `ok-${command}`);
    cpSync(store, dir, { recursive: true });
    const r = await cli(['store', command, dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true });
  });
});
