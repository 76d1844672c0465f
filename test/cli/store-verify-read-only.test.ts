/**
 * `store verify --read-only` prints the report `store verify` prints, without changing a file:
 * the engine's own open and close run over an in-memory overlay of the directory. A torn tail is
 * reported as what verify would cut, with the state hash verify then prints; a store a live
 * process has open is refused as verify refuses it.
 */
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { encodeFrame } from '../../storage/log/frame.js';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { asAfterCrash } from '../support/crash-image.js';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-verify-read-only-'));
const closed = path.join(work, 'closed');
afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(async () => {
  await writeMemoryStore(closed, 400, 16 * 1024);
});

/** Every file under `dir` (directories walked) with the SHA-256 of its bytes and its mtime (a file written anew has a new one). */
function filesAndHashes(dir: string): Record<string, string> {
  const found: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else found[path.relative(dir, p)] = `${createHash('sha256').update(readFileSync(p)).digest('hex')} mtime ${statSync(p, { bigint: true }).mtimeNs}`;
    }
  };
  walk(dir);
  return found;
}

async function verify(dir: string, ...flags: string[]): Promise<Record<string, unknown>> {
  const r = await cli(['store', 'verify', dir, '--json', ...flags]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe.concurrent('store verify --read-only', () => {
  test('of a cleanly closed store: no file changes (the checkpoint stays), the report is verify\'s', async () => {
    const dir = path.join(work, 'clean');
    cpSync(closed, dir, { recursive: true });
    const before = filesAndHashes(dir);
    expect(Object.keys(before)).toContain(path.join('log', 'checkpoint.json'));
    const readOnly = await verify(dir, '--read-only');
    expect(filesAndHashes(dir)).toEqual(before);
    const normal = await verify(dir);
    expect({ ...readOnly, readOnly: false }).toEqual(normal);
    // The tenant's size as IOBOXX_TENANT_ROW_BYTES_MAX counts it, where an operator looks.
    expect((normal.rowBytes as { live: number }).live).toBeGreaterThan(0);
  });

  test('of a store with a torn tail: reported as what would be cut, nothing cut, then verify cuts it and prints the same hash', async () => {
    const dir = path.join(work, 'torn');
    cpSync(closed, dir, { recursive: true });
    const opened = await Store.open({ dir, module: memoryModule });
    const next = opened.lastOffset + 1;
    await opened.close();
    asAfterCrash(dir);
    const segments = readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort();
    const last = path.join(dir, 'log', segments.at(-1)!);
    const end = statSync(last).size;
    // A crash mid-write: the next frame's first 30 bytes reached the disk.
    appendFileSync(last, encodeFrame(next, Buffer.alloc(200, 7)).subarray(0, 30));
    const before = filesAndHashes(dir);

    const readOnly = await verify(dir, '--read-only');
    expect(filesAndHashes(dir)).toEqual(before);
    expect(readOnly.tornTail).toMatchObject({ file: last, position: end, bytes: 30 });
    const text = await cli(['store', 'verify', dir, '--read-only']);
    expect(text.stdout).toContain(`torn tail: would cut 30 bytes at ${last}:${end}`);
    expect(filesAndHashes(dir)).toEqual(before);

    const normal = await verify(dir);
    expect({ ...readOnly, readOnly: false }).toEqual(normal);
    expect(statSync(last).size).toBe(end); // verify did cut it
  });

  test('of a store a live process has open: refused like verify, nothing changed', async () => {
    const dir = path.join(work, 'open');
    cpSync(closed, dir, { recursive: true });
    const store = await Store.open({ dir, module: memoryModule });
    try {
      const before = filesAndHashes(dir);
      const r = await cli(['store', 'verify', dir, '--json', '--read-only']);
      expect(r.code, r.stderr).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'conflict', hint: expect.stringMatching(/store inspect .*; or stop process \d+ first$/) });
      expect(filesAndHashes(dir)).toEqual(before);
    } finally {
      await store.close();
    }
  });
});
