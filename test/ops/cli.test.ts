/**
 * `tenants list`, `backup TENANT DIR` and `restore DIR TENANT` as an operator runs them: real
 * CLI processes beside a real process that keeps the tenant's store open and writing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { openAuditBucket } from '../../storage/audit/audit-bucket.js';
import { s3Service } from '../support/services.js';
import { runProcess, type ProcessOutcome } from '../support/run-process.js';
import { cliNodeArgs } from '../support/cli-entry.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const writerEntry = path.join(root, 'test/ops/fixtures/memory-writer.ts');
const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-ops-cli-'));
const dataDir = path.join(work, 'data');
let writer: ChildProcess;
let acked = -1;

/** The mark a shutdown leaves for a tenant whose control-plane work did not drain (server/control/control-pending.ts). */
function markControlPending(data: string, tenant: string): void {
  mkdirSync(path.join(data, 'control-pending'), { recursive: true });
  writeFileSync(path.join(data, 'control-pending', tenant), '');
}

function cli(...args: string[]): Promise<ProcessOutcome> {
  return cliWith({}, ...args);
}

function cliWith(extraEnv: Record<string, string>, ...args: string[]): Promise<ProcessOutcome> {
  const env: NodeJS.ProcessEnv = { ...process.env, IOBOXX_DATA_DIR: dataDir, IOBOXX_LOG_LEVEL: 'silent', ...extraEnv };
  delete env.IOBOXX_OIDC_ISSUER;
  return runProcess(process.execPath, [...cliNodeArgs, ...args], { cwd: root, env });
}

/** Resolves once the writer has acknowledged `offset`. */
function writerReaches(offset: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (acked >= offset) {
        writer.stdout!.off('data', check);
        resolve();
      }
    };
    writer.stdout!.on('data', check);
    check();
  });
}

beforeAll(async () => {
  const storeDir = path.join(dataDir, 'tenants', 'acme');
  mkdirSync(storeDir, { recursive: true });
  writer = spawn(process.execPath, ['--import', 'tsx', writerEntry, storeDir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  writer.stderr!.on('data', (d: Buffer) => process.stderr.write(`[writer] ${d.toString()}`));
  let buffered = '';
  writer.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) if (line.startsWith('ack ')) acked = Math.max(acked, Number(line.slice(4)));
  });
  await writerReaches(200);
}, 60_000);

afterAll(() => {
  writer.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

describe('operator commands beside a writing process', () => {
  test('every command answers --help', async () => {
    const commands = [['tenants', 'list', '--help'], ['backup', '--help'], ['restore', '--help']];
    const results = await Promise.all(commands.map((args) => cli(...args)));
    results.forEach((r, i) => {
      expect(r.code, commands[i]!.join(' ')).toBe(0);
      expect(r.stdout).toContain('Usage:');
      expect(r.stdout).toContain('--json');
    });
  }, 30_000);

  test('tenants list shows the open tenant with its pid, size and last offset, without opening it', async () => {
    const r = await cli('tenants', 'list', '--json');
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { tenants: { tenant: string; open: boolean; openByPid: number; lastOffset: number; bytesOnDisk: number }[] };
    expect(report.tenants).toHaveLength(1);
    const acme = report.tenants[0]!;
    expect(acme).toMatchObject({ tenant: 'acme', open: true, openByPid: writer.pid });
    expect(acme.lastOffset).toBeGreaterThanOrEqual(200);
    expect(acme.bytesOnDisk).toBeGreaterThan(0);
    const text = await cli('tenants', 'list');
    expect(text.stdout).toMatch(/acme\s+\S+ \S+\s+\d+\s+.*yes \(pid \d+\)/);
  }, 30_000);

  test('backup while the tenant keeps writing, then restore in another data directory proves the same state hash', async () => {
    const backupDir = path.join(work, 'backup-1');
    const b = await cli('backup', 'acme', backupDir, '--json');
    expect(b.code, b.stderr).toBe(0);
    const backup = JSON.parse(b.stdout) as { ok: boolean; endOffset: number; stateHash: string };
    expect(backup.ok).toBe(true);
    expect(backup.endOffset).toBeGreaterThanOrEqual(200);
    await writerReaches(backup.endOffset + 50); // it never stopped

    const otherData = path.join(work, 'data-2');
    const r = await cli('restore', backupDir, 'acme', '--json', '--data-dir', otherData);
    expect(r.code, r.stderr).toBe(0);
    const restored = JSON.parse(r.stdout) as { ok: boolean; endOffset: number; stateHash: string; stateHashVerified: boolean };
    expect(restored).toMatchObject({ ok: true, endOffset: backup.endOffset, stateHash: backup.stateHash, stateHashVerified: true });

    const list = JSON.parse((await cli('tenants', 'list', '--json', '--data-dir', otherData)).stdout) as { tenants: { tenant: string; open: boolean; lastOffset: number }[] };
    expect(list.tenants).toEqual([expect.objectContaining({ tenant: 'acme', open: false, lastOffset: backup.endOffset })]);
    expect(existsSync(path.join(otherData, 'known-tenants', 'acme')), 'the restored tenant is not recorded as known').toBe(true);
  }, 60_000);

  test('restore refuses a damaged backup (exit 3, naming the file) and a store that is open', async () => {
    const backupDir = path.join(work, 'backup-2');
    expect((await cli('backup', 'acme', backupDir)).code).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(backupDir, 'backup.json'), 'utf8')) as { files: { path: string }[] };
    const segment = manifest.files.find((f) => f.path.startsWith('log/'))!;
    const file = path.join(backupDir, 'store', segment.path);
    const bytes = readFileSync(file);
    bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0xff;
    writeFileSync(file, bytes);
    const damaged = await cli('restore', backupDir, 'acme', '--data-dir', path.join(work, 'data-3'));
    expect(damaged.code).toBe(3);
    expect(damaged.stderr).toContain(file);
    expect(existsSync(path.join(work, 'data-3')), 'a refused restore made its data directory').toBe(false);

    const open = await cli('restore', path.join(work, 'backup-1'), 'acme', '--json');
    expect(open.code).toBe(1);
    expect(JSON.parse(open.stdout)).toMatchObject({ ok: false, code: 'conflict' });
  }, 60_000);

  test('backup --upload puts it under the tenant prefix in S3; restore --from-s3 latest brings it back with the same state hash', async () => {
    const s3 = s3Service();
    const name = `ioboxx-cli-backup-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
    const config = { endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, bucket: name };
    await openAuditBucket(config).client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: true }));
    const env = { S3_ENDPOINT: s3.endpoint, S3_REGION: s3.region, S3_BUCKET: name, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
    const b = await cliWith(env, 'backup', 'acme', path.join(work, 'backup-s3'), '--upload', '--json');
    expect(b.code, b.stderr).toBe(0);
    const backup = JSON.parse(b.stdout) as { stateHash: string; endOffset: number; uploaded: { prefix: string } };
    expect(backup.uploaded.prefix).toMatch(/^tenants\/acme\/backups\//);
    const r = await cliWith(env, 'restore', path.join(work, 'download'), 'acme', '--from-s3', 'latest', '--json', '--data-dir', path.join(work, 'data-s3'));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, endOffset: backup.endOffset, stateHash: backup.stateHash, stateHashVerified: true });
  }, 60_000);
});

describe('retiring a tenant: tenants forget and tenants delete', () => {
  test('both change nothing without --yes', async () => {
    for (const command of ['forget', 'delete']) {
      const r = await cli('tenants', command, 'acme');
      expect(r.code, command).toBe(1);
      expect(r.stderr, command).toContain('add --yes');
    }
    expect(existsSync(path.join(dataDir, 'tenants', 'acme'))).toBe(true);
  });

  test('delete refuses a store a live process has open, and moves nothing', async () => {
    const r = await cli('tenants', 'delete', 'acme', '--yes', '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'conflict', message: `the store of acme is open in process ${writer.pid}` });
    expect(existsSync(path.join(dataDir, 'tenants', 'acme', 'log'))).toBe(true);
  });

  test('delete moves a closed store whole into the dated trash and forgets the tenant', async () => {
    const data = path.join(work, 'data-delete');
    expect((await cli('restore', path.join(work, 'backup-1'), 'acme', '--data-dir', data)).code).toBe(0);
    const before = readdirSync(path.join(data, 'tenants', 'acme', 'log')).sort();
    markControlPending(data, 'acme');
    const r = await cli('tenants', 'delete', 'acme', '--yes', '--json', '--data-dir', data);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; movedTo: string; forgotten: boolean };
    expect(report).toMatchObject({ ok: true, forgotten: true });
    expect(path.relative(data, report.movedTo)).toMatch(/^trash\/\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z\/acme$/);
    expect(readdirSync(path.join(report.movedTo, 'log')).sort(), 'the trash copy lost files').toEqual(before);
    expect(existsSync(path.join(report.movedTo, 'LOCK'))).toBe(false);
    expect(existsSync(path.join(data, 'tenants', 'acme'))).toBe(false);
    expect(existsSync(path.join(data, 'known-tenants', 'acme'))).toBe(false);
    expect(existsSync(path.join(data, 'control-pending', 'acme')), 'the next start would drain, so recreate, the deleted tenant').toBe(false);
    const text = await cli('tenants', 'delete', 'acme', '--yes', '--data-dir', data);
    expect(text.code).toBe(1); // gone and forgotten: nothing left to delete
    expect(text.stderr).toContain('no tenant acme');
  }, 60_000);

  test("forget drops a vanished store's record, and refuses while the store is still in place", async () => {
    const data = path.join(work, 'data-forget');
    expect((await cli('restore', path.join(work, 'backup-1'), 'acme', '--data-dir', data)).code).toBe(0);
    const inPlace = await cli('tenants', 'forget', 'acme', '--yes', '--json', '--data-dir', data);
    expect(inPlace.code).toBe(1);
    expect(JSON.parse(inPlace.stdout)).toMatchObject({ ok: false, code: 'conflict', hint: expect.stringContaining('tenants delete acme --yes') });
    rmSync(path.join(data, 'tenants', 'acme'), { recursive: true }); // the store vanishes
    markControlPending(data, 'acme');
    const r = await cli('tenants', 'forget', 'acme', '--yes', '--data-dir', data);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('forgot tenant acme');
    expect(existsSync(path.join(data, 'known-tenants', 'acme'))).toBe(false);
    expect(existsSync(path.join(data, 'control-pending', 'acme')), 'the next start would drain, so recreate, the forgotten tenant').toBe(false);
    const again = await cli('tenants', 'forget', 'acme', '--yes', '--data-dir', data);
    expect(again.stdout).toContain('was not known; nothing changed');
  }, 60_000);
});
