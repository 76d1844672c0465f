/**
 * Damage an open store meets while serving (a frame acknowledged earlier that no longer verifies
 * when read back) names the command that repairs that store, as damage found by its open does:
 * `ioboxx-memory store repair DIR` with the store's directory, quoted for the shell. The reads that
 * meet it: a transaction read back (history, a subscription's catch-up, the changes feed) and an
 * idempotency key's replay (its first call's arguments are read from its frame).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { DamagedStore } from '../../storage/errors.js';
import { segmentHeaderBytes } from '../../storage/log/segment.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const dirs: string[] = [];
// A space in the path: the hint's command must quote it.
const tmp = () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ioboxx serving damage-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const onlySegment = (dir: string) => path.join(dir, 'log', readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort().at(-1)!);

/** Flips a byte inside the payload of the frame of `offset` in the store's one (active) segment. */
function damageFrame(dir: string, offset: number): void {
  const file = onlySegment(dir);
  const buf = readFileSync(file);
  let position = segmentHeaderBytes;
  for (let k = 0; k < offset; k++) position += 12 + buf.readUInt32LE(position + 8) + 4;
  buf[position + 20] = buf[position + 20]! ^ 0x40;
  writeFileSync(file, buf);
}

async function rejection(promise: Promise<unknown>): Promise<DamagedStore> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(DamagedStore);
  return error as DamagedStore;
}

describe('damage met by an open store names the store to repair', () => {
  test('a transaction read back whose frame no longer verifies: the hint is the repair command for this store', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    try {
      for (let i = 0; i < 20; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
      damageFrame(dir, 7);
      const damaged = await rejection(store.readTx(7));
      expect(damaged.file).toBe(onlySegment(dir));
      // This process serves the store and holds its LOCK: the hint says to stop it first.
      expect(damaged.hint).toContain(`stop the process serving the store (it holds the store's LOCK), then run \`ioboxx-memory store repair '${dir}'\``);
      expect(damaged.message).toContain(`ioboxx-memory store repair '${dir}'`);
      // The frames around it still read.
      expect((await store.readTx(8))?.invocation.reducer).toBe('put');
    } finally {
      await store.close();
    }
  });

  test("an idempotency key's replay whose first frame no longer verifies: the same hint", async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    try {
      const args = { id: 'k', type: 't', n: 1 };
      const first = await store.call('put', args, testCaller, { idempotencyKey: 'key-1' });
      for (let i = 0; i < 5; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
      damageFrame(dir, first.offset);
      const damaged = await rejection(store.call('put', args, testCaller, { idempotencyKey: 'key-1' }));
      expect(damaged.hint).toContain(`ioboxx-memory store repair '${dir}'`);
    } finally {
      await store.close();
    }
  });
});
