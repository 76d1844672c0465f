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
