/**
 * Sizing figures for operators (docs/OPERATIONS.md), measured with the real memory module:
 * `object_put` of a typical object (type, ~10 attributes, ~300 bytes of JSON), N objects.
 *  - resident memory per object (heap + buffers, after a full GC), including the version
 *    history row each put records and the store's indexes;
 *  - commitlog bytes per transaction (frame: header, msgpack payload with the invocation and
 *    the row changes, CRC);
 *  - snapshot bytes per object (binary + JSON);
 *  - the open from that snapshot (the first call to a tenant after a start or an eviction), with
 *    the check of the log the snapshot covers (one snapshot: the store keeps every segment).
 * N is 200,000 (10,000 with --quick).
 */
import { readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { Store } from '../storage/store.js';
import { memoryModule } from '../tools/index.js';
import type { Bench } from './bench.js';

const writers = 256;

function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? bytesUnder(full) : statSync(full).size;
  }
  return total;
}

function typicalObject(n: number) {
  return {
    id: `person-${n}`,
    type: 'person',
    attributes: {
      name: `Person number ${n}`,
      email: `person${n}@example.org`,
      role: n % 3 === 0 ? 'engineer' : 'operator',
      team: `team-${n % 40}`,
      active: n % 7 !== 0,
      score: (n * 37) % 1000,
      joined: '2026-01-15',
      tags: ['memory', 'sizing', `cohort-${n % 12}`],
      note: 'met at the quarterly review; follow up on the migration plan',
    },
  };
}

export const sizingBench: Bench = {
  name: 'sizing',
  description: 'memory per object, log bytes per transaction, snapshot bytes per object and the open from that snapshot, with the memory module',
  async run(ctx) {
    const objects = ctx.quick ? 10_000 : 200_000;
    const dir = path.join(ctx.dataDir, 'store');
    const before = await ctx.settledMemory();
    const store = await Store.open({ dir, module: memoryModule });
    const caller = { tenant: 'sizing', subject: 'bench' };
    let next = 0;
    await Promise.all(Array.from({ length: writers }, async () => {
      for (let n = next++; n < objects; n = next++) await store.call('object_put', typicalObject(n), caller);
    }));
    const after = await ctx.settledMemory();
    const logBytes = bytesUnder(path.join(dir, 'log'));
    const snapshotStartMs = performance.now();
    await store.snapshot();
    const snapshotMs = performance.now() - snapshotStartMs;
    const snapshotBytes = bytesUnder(path.join(dir, 'snapshots'));
    const json = JSON.stringify(typicalObject(objects / 2).attributes).length;
    await store.close();
    // The first call to a tenant after a start or an eviction waits for this: the snapshot loaded, the index built, the log checked.
    const openStartMs = performance.now();
    const reopened = await Store.open({ dir, module: memoryModule });
    const openMs = performance.now() - openStartMs;
    await reopened.close();
    ctx.emit({ metric: `resident bytes per object (${objects.toLocaleString('en-US')} objects, ${json} B attributes)`, unit: 'bytes', ours: (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / objects, better: 'lower' });
    ctx.emit({ metric: 'commitlog bytes per object_put transaction', unit: 'bytes', ours: logBytes / objects, better: 'lower' });
    ctx.emit({ metric: 'snapshot bytes per object (binary + JSON)', unit: 'bytes', ours: snapshotBytes / objects, better: 'lower' });
    ctx.emit({ metric: `snapshot write of ${objects.toLocaleString('en-US')} objects`, unit: 'ms', ours: snapshotMs, better: 'lower' });
    ctx.emit({ metric: `open from the snapshot of ${objects.toLocaleString('en-US')} objects (${Math.round(logBytes / 2 ** 20)} MiB of log checked)`, unit: 'ms', ours: openMs, better: 'lower' });
  },
};
