/**
 * deploy/ioboxx-memory.env.example is installed verbatim as the unit's EnvironmentFile=. systemd
 * reads `KEY=value  # note` as the value `value  # note` (only a whole line is a comment), so every
 * line must mean, read that way, what it says.
 */
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { loadConfig } from '../../server/config.js';

/** systemd.exec(5) EnvironmentFile=: whole-line `#`/`;` comments, KEY=VALUE, whitespace around the value stripped. */
function systemdEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) continue;
    const eq = trimmed.indexOf('=');
    if (eq < 0) continue;
    env[trimmed.slice(0, eq).trim()] = trimmed.slice(eq + 1).trim();
  }
  return env;
}

test('the shipped EnvironmentFile example, read as systemd reads it, carries no comment inside a value and serves on loopback', () => {
  const env = systemdEnvironmentFile(readFileSync(new URL('../../deploy/ioboxx-memory.env.example', import.meta.url), 'utf8'));
  expect(Object.entries(env).filter(([, value]) => value.includes('#'))).toEqual([]);
  const config = loadConfig(env, '/srv/app');
  expect(config.http.host).toBe('127.0.0.1');
  expect(config.http.port).toBe(8787);
});
