import { execFileSync } from 'node:child_process';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config.js';
import { configFileBytesMax, environmentWithFile } from '../../server/config-file.js';

const file = (content: string) => {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'ioboxx-cfg-')), 'config.json');
  writeFileSync(f, content);
  return f;
};

/** The ConfigError the file is refused with. */
function refusal(f: string): ConfigError {
  try {
    environmentWithFile({}, f);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`${f} was taken`);
}

describe('configuration file', () => {
  test('values come from the file unless the environment sets them', () => {
    const f = file(JSON.stringify({ IOBOXX_HTTP_PORT: 9001, IOBOXX_LOG_LEVEL: 'debug' }));
    const config = loadConfig(environmentWithFile({ IOBOXX_LOG_LEVEL: 'warn' }, f));
    expect(config.http.port).toBe(9001);
    expect(config.logLevel).toBe('warn');
  });

  test('a variable set to nothing does not wipe the file\'s value (it would fall back to the default: local mode, PGlite)', () => {
    const f = file(JSON.stringify({ IOBOXX_OIDC_ISSUER: 'https://id.example.com/realms/r', IOBOXX_OIDC_AUDIENCE: 'memory', DATABASE_URL: 'postgres://db/x', IOBOXX_HTTP_PORT: 9001 }));
    const config = loadConfig(environmentWithFile({ IOBOXX_OIDC_ISSUER: '', DATABASE_URL: '  ', IOBOXX_HTTP_PORT: '9002' }, f));
    expect(config.mode).toBe('token');
    expect(config.auth?.oidc.issuer).toBe('https://id.example.com/realms/r');
    expect(config.database.url).toBe('postgres://db/x');
    expect(config.http.port).toBe(9002);
  });

  test('every problem of the file is listed together, and values are never echoed', () => {
    const error = refusal(file(JSON.stringify({ NOT_A_SETTING: 1, IOBOXX_TOKEN: { nested: 'secret-value' }, ALSO_BAD: 'x' })));
    expect(error.problems).toHaveLength(3);
    expect(error.message).not.toContain('secret-value');
  });

  test('a misspelt setting is refused, naming it, while every setting the server reads is taken', () => {
    const misspelt = file(JSON.stringify({ IOBOXX_HTTP_PROT: 9001, S3_BUKET: 'audit', IOBOXX_OIDC_AUDIANCE: 'memory', IOBOXX_LOG_LEVEL: 'warn' }));
    expect(refusal(misspelt).problems).toEqual(['IOBOXX_HTTP_PROT', 'S3_BUKET', 'IOBOXX_OIDC_AUDIANCE'].map((name) => `config file ${misspelt}: unknown setting ${name}`));
    const every = file(JSON.stringify({
      IOBOXX_HTTP_PORT: 9001, S3_BUCKET: 'audit', DATABASE_DIRECT_URL: 'postgres://db/x', IOBOXX_OIDC_ISSUER: 'https://id.example.com/realms/r',
      IOBOXX_OIDC_AUDIENCE: 'memory', IOBOXX_OIDC_JWKS_STALE_MAX_AGE_MS: 1000, IOBOXX_ROLE_MAP: '{"viewer":["read"]}', IOBOXX_TENANT_CLAIM: 'orgs',
    }));
    expect(environmentWithFile({}, every)).toMatchObject({ IOBOXX_HTTP_PORT: '9001', IOBOXX_OIDC_AUDIENCE: 'memory', IOBOXX_TENANT_CLAIM: 'orgs' });
  });

  test('a missing or malformed file is a clear error', () => {
    expect(() => environmentWithFile({}, '/nonexistent/ioboxx.json')).toThrow(/ENOENT/);
    expect(() => environmentWithFile({}, file('{not json'))).toThrow(/not JSON/);
    expect(() => environmentWithFile({}, file('[1,2]'))).toThrow(/JSON object/);
  });

  test('a file over configFileBytesMax, a directory, a FIFO or a device is refused before it is read', () => {
    const big = file(`{"IOBOXX_LOG_LEVEL": "info", "IOBOXX_PAD": "${'x'.repeat(configFileBytesMax)}"}`);
    expect(() => environmentWithFile({}, big)).toThrow(`has ${statSync(big).size} bytes, over ${configFileBytesMax} (configFileBytesMax)`);
    // Multi-byte characters: the limit counts bytes, not characters.
    const wide = file(`{"IOBOXX_LOG_LEVEL": "${'é'.repeat(configFileBytesMax / 2)}"}`);
    expect(() => environmentWithFile({}, wide)).toThrow(/bytes, over 262144 \(configFileBytesMax\)/);
    expect(() => environmentWithFile({}, path.dirname(big))).toThrow(/is a directory, not a regular file/);
    const fifo = path.join(path.dirname(big), 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => environmentWithFile({}, fifo)).toThrow(/fifo is a FIFO, not a regular file/); // no writer: reading it would block forever
    expect(() => environmentWithFile({}, '/dev/zero')).toThrow(/zero is a device, not a regular file/);
  });
});
