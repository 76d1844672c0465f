/**
 * With --json, a store command that fails prints `{"ok":false,...}` on stdout like the tenants,
 * backup and restore commands: the error code, the message, the hint, and for a damaged store
 * (exit 3) the file and byte of the damage.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-store-json-'));
const damaged = path.join(work, 'damaged');
const firstSegment = (dir: string) => path.join(dir, 'log', readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort()[0]!);

beforeAll(async () => {
  await writeMemoryStore(damaged, 1000, 64 * 1024);
  // A byte in the middle of the first (sealed) segment: the store refuses to open.
  const bytes = readFileSync(firstSegment(damaged));
  bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
  writeFileSync(firstSegment(damaged), bytes);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.concurrent('store commands with --json', () => {
  test.each(['verify', 'snapshot'])('store %s of a damaged store: exit 3, JSON with file and position', async (command) => {
    const dir = path.join(work, command); // a copy each: two opens at once would meet the store's lock
    cpSync(damaged, dir, { recursive: true });
    const segment = firstSegment(dir);
    const r = await cli(['store', command, dir, '--json']);
    expect(r.code, r.stderr).toBe(3);
    const answer = JSON.parse(r.stdout) as { ok: boolean; code: string; file: string; position: number };
    expect(answer).toMatchObject({ ok: false, code: 'damaged_store', file: segment });
    expect(answer.position).toBeGreaterThan(0);
    expect(answer.position).toBeLessThanOrEqual(readFileSync(segment).length >> 1);
    expect(r.stderr).toContain(`error: damaged store: ${segment}`);
    expect(r.stderr.match(/store repair/g), 'the hint printed once').toHaveLength(1);
  });

  test('store verify of a missing directory: JSON with code, message and hint', async () => {
    const missing = path.join(work, 'nope');
    const r = await cli(['store', 'verify', missing, '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ ok: false, code: 'not_found', message: `${missing} does not exist`, hint: expect.stringContaining('log/') });
  });
});

test('store verify of a store another process has open: the hint says what to do, in JSON and text', async () => {
  const dir = path.join(work, 'open');
  await writeMemoryStore(dir, 10, 64 * 1024);
  const store = await Store.open({ dir, module: memoryModule });
  try {
    const json = await cli(['store', 'verify', dir, '--json']);
    expect(json.code, json.stderr).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, code: 'conflict', hint: `to read a store while it is served, run \`ioboxx-memory store inspect ${dir}\` (or \`tenants list --check\`); or stop process ${process.pid} first` });
    const text = await cli(['store', 'verify', dir]);
    expect(text.code).toBe(1);
    expect(text.stderr).toContain(`\n  to read a store while it is served, run \`ioboxx-memory store inspect ${dir}\``);
  } finally {
    await store.close();
  }
});

test('store verify of a store whose LOCK is a FIFO: refused at once naming it (before, the open waited for a writer for ever), the store left as it was', async () => {
  const dir = path.join(work, 'fifo-lock');
  await writeMemoryStore(dir, 10, 64 * 1024);
  const lock = path.join(dir, 'LOCK');
  execFileSync('mkfifo', [lock]);
  const before = readdirSync(dir).sort();
  const r = await cli(['store', 'verify', dir, '--json']);
  expect(r.code, r.stderr).toBe(1);
  expect(JSON.parse(r.stdout)).toEqual({ ok: false, code: 'conflict', message: `store ${dir} cannot be opened: LOCK is a FIFO, not a regular file; ioboxx-memory makes LOCK as a small file naming its process`, hint: `move ${lock} away once no process uses this store, then open it again` });
  expect(readdirSync(dir).sort()).toEqual(before);
  expect(lstatSync(lock).isFIFO()).toBe(true);
}, 30_000);

test('store verify of a store with a FIFO named like its last segment: exit 3 naming it (before, the open waited for a writer for ever)', async () => {
  const dir = path.join(work, 'fifo-segment');
  await writeMemoryStore(dir, 10, 64 * 1024);
  const fifo = path.join(dir, 'log', `${'9'.repeat(5).padStart(20, '0')}.log`);
  execFileSync('mkfifo', [fifo]);
  const r = await cli(['store', 'verify', dir, '--json']);
  expect(r.code, r.stderr).toBe(3);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'damaged_store', file: fifo, position: 0, message: expect.stringContaining('a FIFO stands where this segment file should be') });
  expect(lstatSync(fifo).isFIFO()).toBe(true);
}, 30_000);
