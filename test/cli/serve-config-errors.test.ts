/**
 * `serve` (and the operator commands) with settings that are not numbers where numbers are due: exit 2 before anything
 * starts, every bad variable named with the range it takes (zod alone said "received NaN").
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, cliEnv } from './cli-process.js';

test('serve --http with IOBOXX_HTTP_PORT=abc and IOBOXX_MAX_OPEN_TENANTS=1.5: exit 2 naming each with its range', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-config-errors-'));
  const env = { ...cliEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: 'abc', IOBOXX_MAX_OPEN_TENANTS: '1.5', IOBOXX_SHUTDOWN_MS: '5' };
  const [node, ...args] = cliCommand(['serve', '--http']);
  const r = await runProcess(node!, args, { env });
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr).toContain('invalid configuration (3 problems)');
  expect(r.stderr).toContain('IOBOXX_HTTP_PORT: expected an integer from 0 to 65535');
  expect(r.stderr).toContain('IOBOXX_MAX_OPEN_TENANTS: expected an integer from 1 to 100000');
  expect(r.stderr).toContain('IOBOXX_SHUTDOWN_MS: expected an integer from 100 to 600000');
  expect(r.stderr).not.toContain('NaN');
});

test('serve --http with an http issuer off loopback, a query in it or a clock tolerance past 300 s: exit 2 naming each, no stack trace', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-config-errors-'));
  const base = { ...cliEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_OIDC_AUDIENCE: 'memory', IOBOXX_HTTP_PORT: 'abc' };
  const [node, ...args] = cliCommand(['serve', '--http']);
  const plain = await runProcess(node!, args, { env: { ...base, IOBOXX_OIDC_ISSUER: 'http://id.example.com/realms/r', IOBOXX_OIDC_CLOCK_TOLERANCE_S: '301' } });
  expect(plain.code, plain.stderr).toBe(2);
  expect(plain.stderr).toContain('invalid configuration (3 problems)');
  expect(plain.stderr).toContain('IOBOXX_OIDC_ISSUER http://id.example.com/realms/r must use https');
  expect(plain.stderr).toContain('IOBOXX_OIDC_CLOCK_TOLERANCE_S must be at most 300 seconds');
  expect(plain.stderr).toContain('IOBOXX_HTTP_PORT');
  expect(plain.stderr).not.toMatch(/\n\s+at /);
  const query = await runProcess(node!, args, { env: { ...base, IOBOXX_OIDC_ISSUER: 'https://id.example.com/realms/r?x=1' } });
  expect(query.code, query.stderr).toBe(2);
  expect(query.stderr).toContain('IOBOXX_OIDC_ISSUER must not carry a query or fragment');
  expect(query.stderr).not.toMatch(/\n\s+at /);
});

test('operator commands with an invalid configuration exit 2 as serve does, the refusal invalid_config in --json', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ioboxx-config-errors-'));
  const env = { ...cliEnv(), IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: 'abc' };
  for (const command of [['tenants', 'list', '--json'], ['audit', 'verify', '--json']]) {
    const [node, ...args] = cliCommand(command);
    const r = await runProcess(node!, args, { env });
    expect(r.code, `${command.join(' ')}: ${r.stderr}`).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'invalid_config', message: expect.stringContaining('IOBOXX_HTTP_PORT: expected an integer from 0 to 65535') });
  }
});
