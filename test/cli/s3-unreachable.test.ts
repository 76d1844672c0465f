/**
 * An S3 endpoint that cannot be reached (a wrong S3_ENDPOINT, the gateway down): the commands that
 * use S3 say it is S3 that could not be reached, where, and what to check, not only the SDK's
 * `connect ECONNREFUSED 127.0.0.1:9`. With --json, one object on stdout.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, unreachableS3Env } from './cli-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-s3-unreachable-'));

describe.concurrent('S3 that cannot be reached', () => {
  test.each([
    ['restore --from-s3 latest', ['restore', path.join(work, 'download'), 'acme', '--from-s3', 'latest', '--data-dir', path.join(work, 'data'), '--json']],
    ['audit verify --no-control-plane', ['audit', 'verify', '--no-control-plane', '--json']],
  ])('%s: unavailable, naming the endpoint and S3_ENDPOINT', async (_name, command) => {
    const [node, ...args] = cliCommand(command);
    const r = await runProcess(node!, args, { env: unreachableS3Env() });
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: false, code: 'unavailable',
      message: 'S3 at http://127.0.0.1:9 could not be reached: connect ECONNREFUSED 127.0.0.1:9',
      hint: expect.stringContaining('S3_ENDPOINT'),
    });
  });
});
