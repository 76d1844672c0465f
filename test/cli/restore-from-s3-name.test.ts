/**
 * `restore DIR T --from-s3 NAME` with a NAME no upload can have is refused before S3 is asked,
 * saying what a name looks like and how to get one (the line `backup --upload` printed, or latest).
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, unreachableS3Env } from './cli-process.js';

test('restore --from-s3 with a malformed name: invalid_argument naming the form and what to give', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-from-s3-name-'));
  const download = path.join(work, 'download');
  const env = unreachableS3Env(); // configured, but never reached
  const [node, ...args] = cliCommand(['restore', download, 'acme', '--from-s3', 'acme-monday', '--data-dir', path.join(work, 'data'), '--json']);
  const r = await runProcess(node!, args, { env });
  expect(r.code, r.stderr).toBe(1);
  expect(JSON.parse(r.stdout)).toEqual({
    ok: false, code: 'invalid_argument',
    message: 'invalid backup name acme-monday: a name is END_OFFSET-CREATED_MS (20 digits, a dash, milliseconds)',
    hint: expect.stringContaining('--from-s3 latest'),
  });
  expect(existsSync(download)).toBe(false);
});
