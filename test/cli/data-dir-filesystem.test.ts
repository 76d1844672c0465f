/**
 * A data directory on a filesystem that cannot keep a store, with the built CLI as a user runs it:
 * under /proc `serve` never returned (Node 20's recursive mkdir loops on procfs) and neither did
 * `restore`; under /sys it ended on an EPERM of the mkdir; now one line names the directory, the
 * filesystem and the setting to change. On tmpfs the server serves, and warns its commits do not
 * survive a reboot. The same for a backup's DIR: `backup` into /proc never returned either.
 * Each child has a kill timeout, so a spin fails the test instead of hanging it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { baseEnv, repoRoot, serverBin } from '../e2e/server-process.js';
import { writeMemoryStore } from './memory-store.js';

/** A guard, not a measure: a refusal takes well under a second; a spinning mkdir never ends. */
const exitWaitMs = 30_000;

function run(args: readonly string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [serverBin, ...args], {
    cwd: repoRoot, env: { ...baseEnv(), ...env }, input: '', encoding: 'utf8', timeout: exitWaitMs, killSignal: 'SIGKILL',
  });
  const said = `${r.signal === null ? `exit ${r.status}` : `killed by ${r.signal} after ${exitWaitMs} ms (did not end)`}\n${r.stderr}`;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, said };
}

const noStack = /\n\s+at \S/;

test('serve --stdio with IOBOXX_DATA_DIR under /proc ends at once, exit 2, naming proc and the setting', () => {
  const r = run(['serve', '--stdio'], { IOBOXX_DATA_DIR: '/proc/ioboxx-no-such/data' });
  expect(r.status, r.said).toBe(2);
  expect(r.stderr).toContain('ioboxx-memory: the data directory /proc/ioboxx-no-such/data is on proc (at /proc), a pseudo filesystem of the kernel that cannot keep a store: set IOBOXX_DATA_DIR or --data-dir to a directory on a disk\n');
  expect(r.stderr).not.toMatch(noStack);
  expect(r.stdout).toBe('');
});

test('serve --http --data-dir under /sys: exit 2 naming sysfs, not the EPERM of a mkdir', () => {
  const r = run(['serve', '--http', '--data-dir', '/sys/ioboxx-no-such'], { IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'silent' });
  expect(r.status, r.said).toBe(2);
  expect(r.stderr).toBe('ioboxx-memory: the data directory /sys/ioboxx-no-such is on sysfs (at /sys), a pseudo filesystem of the kernel that cannot keep a store: set IOBOXX_DATA_DIR or --data-dir to a directory on a disk\n');
});

test('restore --data-dir under /proc ends at once with the line, exit 1, as the operator commands fail', () => {
  const backupDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-fs-backup-'));
  try {
    const r = run(['restore', backupDir, 'acme', '--data-dir', '/proc/ioboxx-no-such']);
    expect(r.status, r.said).toBe(1);
    expect(r.stderr).toBe('error: the data directory /proc/ioboxx-no-such is on proc (at /proc), a pseudo filesystem of the kernel that cannot keep a store: set IOBOXX_DATA_DIR or --data-dir to a directory on a disk\n');
  } finally {
    rmSync(backupDir, { recursive: true, force: true });
  }
});

test('tenants forget --json with IOBOXX_DATA_DIR under /sys: refused, not "nothing changed"', () => {
  const r = run(['tenants', 'forget', 'acme', '--yes', '--json'], { IOBOXX_DATA_DIR: '/sys/ioboxx-no-such' });
  expect(r.status, r.said).toBe(1);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'invalid_argument', message: expect.stringContaining('is on sysfs') });
});

const shmIsTmpfs = (() => {
  try {
    return statfsSync('/dev/shm').type === 0x01021994;
  } catch {
    return false;
  }
})();

test.skipIf(!shmIsTmpfs)('serve --stdio on tmpfs (/dev/shm) serves, and warns on stderr that its commits do not survive a reboot', () => {
  const shm = mkdtempSync('/dev/shm/ioboxx-fs-');
  const dataDir = path.join(shm, 'data');
  try {
    const r = run(['serve', '--stdio'], { IOBOXX_DATA_DIR: dataDir, IOBOXX_LOG_LEVEL: 'warn' });
    expect(r.status, r.said).toBe(0);
    expect(r.stdout).toBe(''); // stdout carries MCP only
    const lines = r.stderr.trim().split('\n').map((line) => JSON.parse(line) as { level: number; msg: string; dataDir?: string });
    expect(lines).toContainEqual(expect.objectContaining({
      level: 40, dataDir,
      msg: `the data directory ${dataDir} is on tmpfs, in memory: its commits do not survive a reboot (not durable); set IOBOXX_DATA_DIR or --data-dir to a directory on a disk to keep them`,
    }));
    expect(statSync(dataDir).isDirectory()).toBe(true); // served: not refused, the data directory was made
  } finally {
    rmSync(shm, { recursive: true, force: true });
  }
});

describe('a backup directory on a filesystem that cannot keep one', () => {
  const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-fs-backup-of-'));
  const dataDir = path.join(work, 'data');
  beforeAll(() => writeMemoryStore(path.join(dataDir, 'tenants', 'acme'), 20, 64 * 1024));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  test('backup into /proc ends at once naming proc and what to give, exit 1', () => {
    const r = run(['backup', 'acme', '/proc/ioboxx-no-such-backup', '--data-dir', dataDir]);
    expect(r.status, r.said).toBe(1);
    expect(r.stderr).toBe('error: the backup directory /proc/ioboxx-no-such-backup is on proc (at /proc), a pseudo filesystem of the kernel that cannot keep a backup: give a DIR on a disk\n');
  });

  test('backup --json into /sys: invalid_argument naming sysfs, not the EPERM of a mkdir', () => {
    const r = run(['backup', 'acme', '/sys/ioboxx-no-such-backup', '--json', '--data-dir', dataDir]);
    expect(r.status, r.said).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ ok: false, code: 'invalid_argument', message: 'the backup directory /sys/ioboxx-no-such-backup is on sysfs (at /sys), a pseudo filesystem of the kernel that cannot keep a backup: give a DIR on a disk' });
  });

  test('restore --from-s3 downloading into /proc: refused naming proc before S3 is asked', () => {
    const r = run(['restore', '/proc/ioboxx-no-such-download', 'acme2', '--from-s3', 'latest', '--data-dir', dataDir]);
    expect(r.status, r.said).toBe(1);
    expect(r.stderr).toBe('error: the backup directory /proc/ioboxx-no-such-download is on proc (at /proc), a pseudo filesystem of the kernel that cannot keep a backup: give a DIR on a disk\n');
  });

  test.skipIf(!shmIsTmpfs)('backup into tmpfs is taken with a warning; restoring it as a store on tmpfs warns of the data directory', () => {
    const shm = mkdtempSync('/dev/shm/ioboxx-fs-');
    const backupDir = path.join(shm, 'backup');
    const shmData = path.join(shm, 'data');
    try {
      const taken = run(['backup', 'acme', backupDir, '--json', '--data-dir', dataDir]);
      expect(taken.status, taken.said).toBe(0);
      expect(JSON.parse(taken.stdout)).toMatchObject({ ok: true, endOffset: 19 });
      expect(taken.stderr).toBe(`warning: the backup directory ${backupDir} is on tmpfs, in memory: the backup does not survive a reboot (not durable); give a DIR on a disk to keep it\n`);
      const restored = run(['restore', backupDir, 'acme', '--json', '--data-dir', shmData]);
      expect(restored.status, restored.said).toBe(0);
      expect(JSON.parse(restored.stdout)).toMatchObject({ ok: true, endOffset: 19 });
      expect(restored.stderr).toBe(`warning: the data directory ${shmData} is on tmpfs, in memory: its commits do not survive a reboot (not durable); set IOBOXX_DATA_DIR or --data-dir to a directory on a disk to keep them\n`);
    } finally {
      rmSync(shm, { recursive: true, force: true });
    }
  });
});
