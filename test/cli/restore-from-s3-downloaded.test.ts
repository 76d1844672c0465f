/**
 * `restore DIR TENANT --from-s3 NAME` run again after its download was whole and its restore failed
 * or was interrupted: DIR holds that backup. The refusal names the command that restores it as it
 * is (without --from-s3), not "choose a new directory", which would only download it again; and
 * that command restores it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cli, cliCommand, unreachableS3Env } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-restore-downloaded-'));
const dataDir = path.join(work, 'data');
const download = path.join(work, 'download');
beforeAll(async () => {
  await writeMemoryStore(path.join(dataDir, 'tenants', 'acme'), 20, 64 * 1024);
  // What a whole download leaves in DIR is a backup like this one.
  const backup = await cli(['backup', 'acme', download, '--data-dir', dataDir]);
  expect(backup.code, backup.stderr).toBe(0);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('DIR already holding a backup: refused before S3 is asked, naming `restore DIR TENANT` without --from-s3, which then restores it', async () => {
  const restoredData = path.join(work, 'restored');
  const [node, ...args] = cliCommand(['restore', download, 'acme', '--from-s3', '00000000000000000019-1', '--json', '--data-dir', restoredData]);
  const r = await runProcess(node!, args, { env: unreachableS3Env() });
  expect(r.code, r.stderr).toBe(1);
  const refused = JSON.parse(r.stdout) as { ok: boolean; code: string; message: string; hint: string };
  expect(refused).toMatchObject({ ok: false, code: 'conflict', message: expect.stringContaining(`${download} already holds a backup`) });
  expect(refused.hint).toContain(`\`ioboxx-memory restore ${download} acme --data-dir ${restoredData}\``);
  expect(refused.hint).toContain('without --from-s3');
  const again = await cli(['restore', download, 'acme', '--json', '--data-dir', restoredData]);
  expect(again.code, again.stderr).toBe(0);
  expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, stateHashVerified: true });
});
