/**
 * `store verify|inspect|snapshot|repair DIR` work on an existing store only: a missing or
 * mistyped path, a file or a directory without log/ is refused (exit 1) and nothing is created.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { cli } from './cli-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-store-dir-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const commands = ['verify', 'inspect', 'snapshot', 'repair'];

describe.concurrent('store commands refuse a DIR that is not a store', () => {
  test.each(commands)('store %s on a missing path: exit 1, nothing created', async (command) => {
    const missing = path.join(work, `nope-${command}`);
    const r = await cli(['store', command, missing]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: ${missing} does not exist`);
    expect(existsSync(missing)).toBe(false);
  });

  test('store verify on a file: exit 1, "is not a directory"', async () => {
    const file = path.join(work, 'file');
    writeFileSync(file, 'not a store');
    const r = await cli(['store', 'verify', file]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: ${file} is not a directory`);
  });

  test.each(commands)('store %s on a directory without log/: exit 1, the directory stays empty', async (command) => {
    const dir = path.join(work, `empty-${command}`);
    mkdirSync(dir);
    const r = await cli(['store', command, dir]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`error: ${dir} is not a store directory (no log/ in it)`);
    expect(readdirSync(dir)).toEqual([]);
  });

  test('store verify -- --json takes --json as the directory and creates none', async () => {
    const cwd = mkdtempSync(path.join(work, 'cwd-'));
    const r = await cli(['store', 'verify', '--', '--json'], cwd);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('error: --json does not exist');
    expect(readdirSync(cwd)).toEqual([]);
  });
});
