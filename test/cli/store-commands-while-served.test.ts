/**
 * `store snapshot` and `store verify` on a store a live process holds (a serving server) are
 * refused by its LOCK, and the refusal says what to run instead while it is served, not only
 * "stop that process first": a served store snapshots on its own, `backup` copies it, and
 * `store inspect` reads it. The real CLI, against a store this test process holds open.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { cli } from './cli-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-store-while-served-'));
const dir = path.join(work, 'tenants', 'acme');
let store: Store;
beforeAll(async () => {
  store = await Store.open({ dir, module: memoryModule });
  await store.call('object_put', { id: 'a', type: 'note', attributes: {} }, { tenant: 'acme', subject: 'test' });
});
afterAll(async () => {
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

test.each([
  // The tenant commands named carry the store's tenant and data directory: pasted, they act on this store, not on ./data.
  ['snapshot', ['store', 'snapshot', dir, '--json'], `a served store takes its own snapshots (every IOBOXX_SNAPSHOT_EVERY_TX transactions, after IOBOXX_SNAPSHOT_EVERY_MS, and when it closes); to copy it while it is served, run \`ioboxx-memory backup acme DIR --data-dir ${work}\``],
  ['verify', ['store', 'verify', dir, '--json'], `to read a store while it is served, run \`ioboxx-memory store inspect ${dir}\` (or \`tenants list --check --data-dir ${work}\`)`],
])('store %s of a store a live process holds: conflict, with what to run instead', async (_name, args, instead) => {
  const r = await cli(args);
  expect(r.code, r.stderr).toBe(1);
  expect(JSON.parse(r.stdout)).toEqual({
    ok: false, code: 'conflict', message: `store ${dir} is open in process ${process.pid}`, hint: `${instead}; or stop process ${process.pid} first`,
  });
});
