import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config.js';
import { environmentWithFile } from '../../server/config-file.js';

const file = (content: string) => {
  const f = path.join(mkdtempSync(path.join(os.tmpdir(), 'ioboxx-cfg-')), 'config.json');
  writeFileSync(f, content);
  return f;
};

describe('configuration file', () => {
  test('values come from the file unless the environment sets them', () => {
    const f = file(JSON.stringify({ IOBOXX_HTTP_PORT: 9001, IOBOXX_LOG_LEVEL: 'debug' }));
    const config = loadConfig(environmentWithFile({ IOBOXX_LOG_LEVEL: 'warn' }, f));
    expect(config.http.port).toBe(9001);
    expect(config.logLevel).toBe('warn');
  });

  test('every problem of the file is listed together, and values are never echoed', () => {
    const f = file(JSON.stringify({ NOT_A_SETTING: 1, IOBOXX_TOKEN: { nested: 'secret-value' }, ALSO_BAD: 'x' }));
    let error: unknown;
    try {
      environmentWithFile({}, f);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(3);
    expect((error as Error).message).not.toContain('secret-value');
  });

  test('a missing or malformed file is a clear error', () => {
    expect(() => environmentWithFile({}, '/nonexistent/ioboxx.json')).toThrow(/ENOENT/);
    expect(() => environmentWithFile({}, file('{not json'))).toThrow(/not JSON/);
    expect(() => environmentWithFile({}, file('[1,2]'))).toThrow(/JSON object/);
  });
});
