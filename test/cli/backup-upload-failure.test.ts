/**
 * `backup TENANT DIR --upload` whose upload fails (S3 cannot be reached): the local backup is whole
 * all the same, and the failure says so, with what to check and what to do next; with --json, one
 * object on stdout. The real CLI on a real memory store.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { backupManifestFileName } from '../../storage/backup/backup-manifest.js';
import { runProcess } from '../support/run-process.js';
import { cli, cliCommand, unreachableS3Env } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-upload-failure-'));
const dataDir = path.join(work, 'data');
beforeAll(() => writeMemoryStore(path.join(dataDir, 'tenants', 'acme'), 200, 64 * 1024));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('an upload to an S3 that cannot be reached: exit 1 saying the local backup is whole, and DIR restores', async () => {
  const dest = path.join(work, 'backup');
  const [node, ...args] = cliCommand(['backup', 'acme', dest, '--upload', '--json', '--data-dir', dataDir]);
  const r = await runProcess(node!, args, { env: unreachableS3Env() });
  expect(r.code, r.stderr).toBe(1);
  const endOffset = 199;
  expect(JSON.parse(r.stdout)).toEqual({
    ok: false, code: 'unavailable',
    message: `the backup in ${dest} is whole (end offset ${endOffset}), but its upload to S3 failed: S3 at http://127.0.0.1:9 could not be reached: connect ECONNREFUSED 127.0.0.1:9`,
    hint: expect.stringMatching(/^check S3_ENDPOINT.*; then take the backup again with --upload, into a new directory/),
  });
  expect(existsSync(path.join(dest, backupManifestFileName))).toBe(true);
  const restored = await cli(['restore', dest, 'acme', '--data-dir', path.join(work, 'restored'), '--json']);
  expect(restored.code, restored.stderr).toBe(0);
  expect(JSON.parse(restored.stdout)).toMatchObject({ ok: true, endOffset, stateHashVerified: true });
});
