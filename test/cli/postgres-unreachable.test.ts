/**
 * The control plane's Postgres that cannot be reached (a wrong port in DATABASE_URL, Postgres
 * down): the audit commands say it is Postgres, where, and to check DATABASE_URL; never that S3
 * could not be reached (S3 is configured here, and was never asked). With --json, one object on stdout.
 */
import { describe, expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, unreachableS3Env } from './cli-process.js';

describe.concurrent('Postgres that cannot be reached', () => {
  test.each([
    ['audit ship', ['audit', 'ship', '--json']],
    ['audit verify', ['audit', 'verify', '--no-stores', '--json']],
    ['audit close-gap', ['audit', 'close-gap', '--tenant', 'acme', '--json']],
  ])('%s: unavailable, naming Postgres and DATABASE_URL, not S3', async (_name, command) => {
    const [node, ...args] = cliCommand(command);
    // Nothing listens on port 1 of loopback (S3 is at port 9): the connection is refused at once.
    const r = await runProcess(node!, args, { env: { ...unreachableS3Env(), DATABASE_URL: 'postgres://ioboxx:secret@127.0.0.1:1/ioboxx' } });
    expect(r.code, r.stderr).toBe(1);
    const report = JSON.parse(r.stdout) as { ok: boolean; code: string; message: string; hint: string };
    expect(report).toEqual({
      ok: false, code: 'unavailable',
      message: "the control plane's Postgres at 127.0.0.1:1 could not be reached: connect ECONNREFUSED 127.0.0.1:1",
      hint: expect.stringContaining('DATABASE_URL'),
    });
    expect(r.stdout + r.stderr).not.toMatch(/S3/);
    expect(r.stdout + r.stderr).not.toContain('secret');
  });
});
