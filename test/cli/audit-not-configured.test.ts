/**
 * `audit ship|verify` without S3 configured: exit 2 saying what to set, and with --json one
 * object on stdout too, as every other failure of a command is (a script reads stdout only).
 */
import { describe, expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, cliEnv } from './cli-process.js';

function withoutS3(): NodeJS.ProcessEnv {
  const env = cliEnv();
  for (const name of ['S3_ENDPOINT', 'S3_REGION', 'S3_BUCKET', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) delete env[name];
  return env;
}

describe.concurrent('audit commands without S3', () => {
  test.each(['ship', 'verify'])('audit %s --json: exit 2, one JSON object naming what to set', async (command) => {
    const [node, ...args] = cliCommand(['audit', command, '--json']);
    const r = await runProcess(node!, args, { env: withoutS3() });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('error: S3 is not configured: set S3_ENDPOINT');
    expect(JSON.parse(r.stdout)).toEqual({ ok: false, code: 'not_configured', message: expect.stringContaining('set S3_ENDPOINT, S3_REGION, S3_BUCKET') });
  });
});
