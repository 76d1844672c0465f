/**
 * A tenant store's snapshot policy (tools/tenant-snapshots.ts) on a real store: a tenant closed
 * after many writes reopens from a snapshot instead of replaying its log, with the same state.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { Store } from '../../storage/store.js';
import { memoryTools, openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { closeSnapshotFreeFactor, closeSnapshotTxMin, snapshotBeforeClose, snapshotBytesPerLiveRowByte } from '../../tools/tenant-snapshots.js';
import { SnapshotNotTaken } from '../../storage/errors.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';

const caller = { tenant: 'acme', subject: 'alice' };
const put = memoryTools.find((tool) => tool.name === 'object_put')!;
/** Writes in flight at once: they share group commits, so a thousand take a few fdatasyncs. */
const writeConcurrency = 100;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ioboxx-tenant-snapshots-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeObjects(memory: TenantMemory, count: number): Promise<void> {
  for (let from = 0; from < count; from += writeConcurrency) {
    const batch = Array.from({ length: Math.min(writeConcurrency, count - from) }, (_, i) =>
      put.call({ memory, caller }, { id: `obj-${from + i}`, type: 'note', attributes: { n: from + i } } as never),
    );
    await Promise.all(batch);
  }
}

const reportOf = (memory: TenantMemory) => (memory.store as Store).report;

const embed = memoryTools.find((tool) => tool.name === 'embedding_put')!;
/** Dimensions of a typical sentence-embedding model. */
const embeddingDims = 384;

/** `count` objects, each with an embedding: the same values on every run (the same snapshot bytes). */
async function writeEmbeddings(memory: TenantMemory, count: number): Promise<void> {
  for (let from = 0; from < count; from += writeConcurrency) {
    const ids = Array.from({ length: Math.min(writeConcurrency, count - from) }, (_, i) => `doc-${from + i}`);
    await Promise.all(ids.map((id) => put.call({ memory, caller }, { id, type: 'doc', attributes: {} } as never)));
    await Promise.all(ids.map((id, i) => embed.call({ memory, caller }, {
      object_id: id, model: 'minilm', vector: Array.from({ length: embeddingDims }, (_, d) => Math.sin((from + i) * embeddingDims + d)),
    } as never)));
  }
}

/** Bytes of every file in the store's snapshot directories. */
async function snapshotFilesBytes(storeDir: string): Promise<number> {
  let bytes = 0;
  for (const snapshot of await readdir(join(storeDir, 'snapshots'))) {
    for (const file of await readdir(join(storeDir, 'snapshots', snapshot))) bytes += (await stat(join(storeDir, 'snapshots', snapshot, file))).size;
  }
  return bytes;
}

describe('tenant store snapshots', () => {
  test('closed after many writes, a tenant reopens from a snapshot at its last offset: nothing replayed, same state', async () => {
    const memory = await openTenantMemory(dir, 'acme');
    await writeObjects(memory, closeSnapshotTxMin);
    const before = { offset: memory.store.lastOffset, hash: memory.store.stateHash() };
    await memory.close();

    const reopened = await openTenantMemory(dir, 'acme');
    try {
      expect(reportOf(reopened)).toMatchObject({ snapshotOffset: before.offset, replayedFrames: 0, checkpointVerified: true });
      expect({ offset: reopened.store.lastOffset, hash: reopened.store.stateHash() }).toEqual(before);
    } finally {
      await reopened.close();
    }
  });

  test('closed after a few writes, a tenant takes no snapshot and replays them', async () => {
    const memory = await openTenantMemory(dir, 'acme');
    await writeObjects(memory, 3);
    await memory.close();
    expect(await readdir(dir)).not.toContain('snapshots');

    const reopened = await openTenantMemory(dir, 'acme');
    try {
      expect(reportOf(reopened)).toMatchObject({ snapshotOffset: -1, replayedFrames: 3 });
    } finally {
      await reopened.close();
    }
  });

  test('on a nearly full disk the closing snapshot is skipped, saying why, and the tenant reopens with every write from its log', async () => {
    const errors: unknown[] = [];
    let memory: TenantMemory | undefined;
    // Just under closeSnapshotFreeFactor x the estimated snapshot bytes.
    const freeBytesOf = async () => closeSnapshotFreeFactor * memory!.store.rowBytes().live * snapshotBytesPerLiveRowByte - 1;
    memory = await openTenantMemory(dir, 'acme', { freeBytesOf, onBackgroundError: (error) => errors.push(error) });
    await writeObjects(memory, closeSnapshotTxMin);
    const before = { offset: memory.store.lastOffset, hash: memory.store.stateHash() };
    await memory.close();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(SnapshotNotTaken);
    expect(errors[0]).toMatchObject({ reason: 'free_space_low' });
    expect((errors[0] as Error).message).toMatch(/closing snapshot skipped: \d+ bytes free, below 2 x the ~\d+ bytes it would take/);
    expect(await readdir(dir)).not.toContain('snapshots');

    const reopened = await openTenantMemory(dir, 'acme');
    try {
      expect(reportOf(reopened)).toMatchObject({ snapshotOffset: -1, replayedFrames: closeSnapshotTxMin });
      expect({ offset: reopened.store.lastOffset, hash: reopened.store.stateHash() }).toEqual(before);
    } finally {
      await reopened.close();
    }
  });

  test('with room for twice the estimated snapshot, the closing snapshot is taken', async () => {
    const memory = await openTenantMemory(dir, 'acme');
    await writeObjects(memory, closeSnapshotTxMin);
    const freeBytesOf = async () => closeSnapshotFreeFactor * memory.store.rowBytes().live * snapshotBytesPerLiveRowByte;
    expect(await snapshotBeforeClose(memory.store as Store, nodeFileLayer, () => undefined, freeBytesOf)).toBe('taken');
    await memory.close();
  });

  test('an embeddings tenant\'s closing snapshot is skipped with less than twice what it writes free: its estimate covers its JSON', async () => {
    // A twin tenant, written the same, tells what the closing snapshot writes.
    const twinDir = join(dir, 'twin');
    const twin = await openTenantMemory(twinDir, 'acme');
    await writeEmbeddings(twin, closeSnapshotTxMin / 2);
    await twin.close();
    const snapshotBytes = await snapshotFilesBytes(twinDir);

    const errors: unknown[] = [];
    const storeDir = join(dir, 'store');
    const freeBytesOf = async () => closeSnapshotFreeFactor * snapshotBytes - 1;
    const memory = await openTenantMemory(storeDir, 'acme', { freeBytesOf, onBackgroundError: (error) => errors.push(error) });
    await writeEmbeddings(memory, closeSnapshotTxMin / 2);
    await memory.close();
    expect(errors, `a snapshot of ${snapshotBytes} bytes taken with ${snapshotBytes * closeSnapshotFreeFactor - 1} free leaves the log less than its size`).toHaveLength(1);
    expect(errors[0]).toMatchObject({ reason: 'free_space_low' });
    expect(await readdir(storeDir)).not.toContain('snapshots');
  });

  test('closing twice closes once', async () => {
    const memory = await openTenantMemory(dir, 'acme');
    await writeObjects(memory, 2);
    await Promise.all([memory.close(), memory.close()]);
    await memory.close();
    const reopened = await openTenantMemory(dir, 'acme');
    expect(reopened.store.lastOffset).toBe(1);
    await reopened.close();
  });
});
