import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { LoopSlices, loopSliceCheckItems } from '../../storage/io/event-loop.js';
import type { FileHandleLike, FileLayer } from '../../storage/io/file-layer.js';
import { readPieceBytes } from '../../storage/io/read-whole.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { idempotencyTable } from '../../storage/idempotency.js';
import { packr, rowUnpackr } from '../../storage/row-codec.js';
import { binaryFileName, jsonFileName, manifestBytesMax, manifestFileName } from '../../storage/snapshot/manifest.js';
import { checkpointBytesMax, checkpointFileName, readCheckpoint } from '../../storage/log/checkpoint.js';
import { listSnapshots, loadSnapshot, snapshotReadChunkBytes, SnapshotInvalid, verifySnapshotFiles } from '../../storage/snapshot/reader.js';
import { Store } from '../../storage/store.js';
import { counterModule, objectsTable, testCaller } from '../support/counter-module.js';
import { countingFileLayer } from '../support/counting-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-snapreader-'));
const schemas = new Map([objectsTable, idempotencyTable].map((s) => [s.name, s]));

/** A store with `n` objects and one snapshot of them; returns its directory and the snapshot's directory. */
async function storeWithSnapshot(n: number): Promise<{ dir: string; snapshotDir: string; hash: string }> {
  const dir = tmp();
  const store = await Store.open({ dir, module: counterModule });
  for (let i = 0; i < n; i++) await store.call('put', { id: `o${(i * 7919) % n}`, type: `t${i % 3}`, n: i, attributes: { i, text: 'é'.repeat(i % 80) } }, testCaller);
  const { stateHash } = await store.snapshot();
  await store.close();
  const [ref] = await listSnapshots(dir, nodeFileLayer);
  return { dir, snapshotDir: ref!.dir, hash: stateHash };
}

/** Rewrite a snapshot's binary through `edit` (values of the canonical stream) and make its manifest agree with it. */
function rewriteSnapshot(snapshotDir: string, edit: (values: unknown[]) => unknown[]): void {
  const values = rowUnpackr.unpackMultiple(readFileSync(path.join(snapshotDir, binaryFileName))) as unknown[];
  const binary = Buffer.concat(edit(values).map((v) => packr.pack(v)));
  const sha256 = createHash('sha256').update(binary).digest('hex');
  const manifestFile = path.join(snapshotDir, manifestFileName);
  const manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as { stateHash: string; files: { binary: { bytes: number; sha256: string } } };
  manifest.stateHash = sha256;
  manifest.files.binary = { bytes: binary.length, sha256 };
  writeFileSync(path.join(snapshotDir, binaryFileName), binary);
  writeFileSync(manifestFile, JSON.stringify(manifest));
}

/** The node file layer, with each read of a file handed at most `bytesMax` bytes, and none from byte `endAt` on (a file shrinking under the reader). */
function shortReads(bytesMax: number, endAt = Infinity): FileLayer & { reads: number } {
  const layer = Object.create(nodeFileLayer) as FileLayer & { reads: number };
  layer.reads = 0;
  layer.open = async (file, flags) => {
    const handle = await nodeFileLayer.open(file, flags);
    const wrapped = Object.create(handle) as FileHandleLike;
    Object.defineProperty(wrapped, 'read', {
      value: (buffer: Uint8Array, offset: number, length: number, position: number) => {
        layer.reads++;
        return position >= endAt ? Promise.resolve(0) : handle.read(buffer, offset, Math.min(length, bytesMax, endAt - position), position);
      },
    });
    return wrapped;
  };
  return layer;
}

/** Index of the first row value of table `name` in the stream. */
function firstRowOf(values: unknown[], name: string): number {
  return values.findIndex((v) => Array.isArray(v) && v[0] === name && typeof v[1] === 'number') + 1;
}

describe('snapshot reader', () => {
  test('a loaded snapshot holds every row, in key order, and reopens to the same hash with its index rebuilt', async () => {
    const { dir, snapshotDir, hash } = await storeWithSnapshot(300);
    const [ref] = await listSnapshots(dir, nodeFileLayer);
    const loaded = await loadSnapshot(ref!, nodeFileLayer, schemas);
    const objects = loaded.tables.get('objects')!;
    expect(objects.size).toBe(300);
    const keys = [...objects.keys()];
    expect(keys).toEqual([...keys].sort());
    expect(ref!.dir).toBe(snapshotDir);
    const store = await Store.open({ dir, module: counterModule });
    expect(store.report.snapshotOffset).toBe(299);
    expect(store.stateHash()).toBe(hash);
    const byType = await store.read((v) => v.table('objects').page({ index: 'by_type', prefix: ['t1'], limit: 1000 }).rows.map((r) => r.id));
    expect(byType).toHaveLength(100);
    expect(byType).toEqual([...byType].sort());
    await store.close();
  });

  test('a load gives the event loop a turn between slices, and reports progress at each: other work is never held for a whole store', async () => {
    // A 1M-object store held the event loop for 5.3 s in one piece. Slices of 0 ms: a turn at
    // every check point (every loopSliceCheckItems rows), so 5 of them in the row decode alone.
    const rows = loopSliceCheckItems * 5 + 100;
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    await Promise.all(Array.from({ length: rows }, (_, i) => store.call('put', { id: `o${i}`, type: 't', n: i, attributes: {} }, testCaller)));
    await store.snapshot();
    await store.close();
    const [ref] = await listSnapshots(dir, nodeFileLayer);
    let steps = 0;
    let heldSteps = 0;
    let otherWorkRan = true;
    await loadSnapshot(ref!, nodeFileLayer, schemas, () => {
      steps += 1;
      if (!otherWorkRan) heldSteps += 1; // work queued at the last step has not had its turn
      otherWorkRan = false;
      setImmediate(() => (otherWorkRan = true));
    }, new LoopSlices(0));
    expect(steps).toBeGreaterThanOrEqual(5);
    expect(heldSteps).toBe(0);
  }, 60_000);

  test('a table\'s tree is built in the slices it is given, other work running between them', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    await Promise.all(Array.from({ length: 3000 }, (_, i) => store.call('put', { id: `o${i}`, type: 't', n: i, attributes: {} }, testCaller)));
    await store.snapshot();
    await store.close();
    const [ref] = await listSnapshots(dir, nodeFileLayer);
    let otherWork = 0;
    const slices = new LoopSlices(0, () => setImmediate(() => otherWork++));
    const loaded = await loadSnapshot(ref!, nodeFileLayer, schemas, undefined, slices);
    expect([...loaded.tables.get('objects')!.keys()]).toHaveLength(3000);
    expect(slices.turns).toBeGreaterThan(0);
    expect(otherWork).toBe(slices.turns);
  }, 60_000);

  test('rows out of key order are refused even when every hash was recomputed to match', async () => {
    const { dir, snapshotDir } = await storeWithSnapshot(20);
    rewriteSnapshot(snapshotDir, (values) => {
      const first = firstRowOf(values, 'objects');
      [values[first], values[first + 1]] = [values[first + 1], values[first]];
      return values;
    });
    const [ref] = await listSnapshots(dir, nodeFileLayer);
    const loading = loadSnapshot(ref!, nodeFileLayer, schemas);
    await expect(loading).rejects.toBeInstanceOf(SnapshotInvalid);
    await expect(loading).rejects.toThrow(/table objects: row 1 is out of key order or repeats a key/);
  });

  test('a repeated key is refused, and the store falls back to replaying the log', async () => {
    const { dir, snapshotDir, hash } = await storeWithSnapshot(20);
    rewriteSnapshot(snapshotDir, (values) => {
      const first = firstRowOf(values, 'objects');
      values[first + 1] = values[first];
      return values;
    });
    const store = await Store.open({ dir, module: counterModule });
    expect(store.report.snapshotOffset).toBe(-1);
    expect(store.report.snapshotsSkipped.join(' ')).toMatch(/repeats a key/);
    expect(store.report.replayedFrames).toBe(20);
    expect(store.stateHash()).toBe(hash);
    await store.close();
  });

  test('bytes that break the decoder but not the manifest are reported as the hash mismatch they are', async () => {
    const { dir, snapshotDir } = await storeWithSnapshot(20);
    const file = path.join(snapshotDir, binaryFileName);
    const bytes = readFileSync(file);
    // Tables by name: `objects` comes first, so its first row follows its header.
    const firstRow = packr.pack(['objects', 20]).length;
    expect(rowUnpackr.unpack(bytes, { start: 0, end: firstRow })).toEqual(['objects', 20]);
    bytes[firstRow] = 0xdb; // that row now starts as a string of about 4 GiB
    writeFileSync(file, bytes);
    const [ref] = await listSnapshots(dir, nodeFileLayer);
    const loading = loadSnapshot(ref!, nodeFileLayer, schemas);
    await expect(loading).rejects.toBeInstanceOf(SnapshotInvalid);
    await expect(loading).rejects.toThrow(/does not match the manifest/);
  });

  test('a snapshot of several read chunks, read in short pieces, loads the same rows as one read whole', async () => {
    // Rows of ~40 KB: the file spans more than one read chunk, so a chunk is hashed while the next is read.
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    const rows = Math.ceil((snapshotReadChunkBytes * 1.5) / 40_000);
    for (let i = 0; i < rows; i++) await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: { text: String(i % 10).repeat(40_000) } }, testCaller);
    const { stateHash } = await store.snapshot();
    await store.close();
    const [ref] = await listSnapshots(dir, nodeFileLayer);
    expect(ref!.manifest!.files.binary.bytes).toBeGreaterThan(snapshotReadChunkBytes);
    const whole = await loadSnapshot(ref!, nodeFileLayer, schemas);
    const layer = shortReads(256 * 1024 + 7);
    const pieces = await loadSnapshot(ref!, layer, schemas);
    expect(layer.reads).toBeGreaterThan(ref!.manifest!.files.binary.bytes / (256 * 1024 + 7) - 1);
    expect(pieces.manifest.stateHash).toBe(stateHash);
    for (const name of ['objects', idempotencyTable.name]) expect([...pieces.tables.get(name)!.keys()]).toEqual([...whole.tables.get(name)!.keys()]);
    expect(await verifySnapshotFiles(ref!, layer)).toBeUndefined();
  }, 60_000);

  test('checking a snapshot larger than two read chunks holds one piece, not the file, and still finds one flipped byte near its end', async () => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    const rows = Math.ceil((snapshotReadChunkBytes * 2.5) / 40_000);
    for (let i = 0; i < rows; i++) await store.call('put', { id: `o${i}`, type: 't', n: i, attributes: { text: String(i % 10).repeat(40_000) } }, testCaller);
    await store.snapshot();
    await store.close();
    const [ref] = await listSnapshots(dir, nodeFileLayer);
    for (const entry of [ref!.manifest!.files.binary, ref!.manifest!.files.json]) expect(entry.bytes).toBeGreaterThan(2 * snapshotReadChunkBytes);
    const layer = countingFileLayer();
    expect(await verifySnapshotFiles(ref!, layer)).toBeUndefined();
    expect(layer.bufferBytesMax).toBe(readPieceBytes);
    // One byte of the JSON's last piece: the check reads to the end.
    const json = path.join(ref!.dir, jsonFileName);
    const at = statSync(json).size - 100;
    const fd = openSync(json, 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, at);
    writeSync(fd, Buffer.from([byte[0]! ^ 0x01]), 0, 1, at);
    closeSync(fd);
    expect(await verifySnapshotFiles(ref!, nodeFileLayer)).toBe(`${jsonFileName} does not match the manifest`);
  }, 60_000);

  test('a manifest over manifestBytesMax is refused by its size, before it is read, and the store falls back to the log', async () => {
    const { dir, snapshotDir, hash } = await storeWithSnapshot(20);
    const manifest = path.join(snapshotDir, manifestFileName);
    truncateSync(manifest, manifestBytesMax + 1); // its JSON and then zeros: only the size can refuse it
    const counting = countingFileLayer();
    const [ref] = await listSnapshots(dir, counting);
    expect(counting.bytesRead).toBe(0);
    expect(ref!.manifest).toBeUndefined();
    expect(ref!.problem).toBe(`manifest unreadable: ${manifestFileName} has ${manifestBytesMax + 1} bytes, over ${manifestBytesMax} (manifestBytesMax)`);
    const store = await Store.open({ dir, module: counterModule });
    expect(store.report.snapshotOffset).toBe(-1);
    expect(store.stateHash()).toBe(hash);
    await store.close();
  });

  test.each([
    ['over checkpointBytesMax', (file: string) => truncateSync(file, checkpointBytesMax + 1)],
    // Opened to read, a FIFO waits for a writer: before, the open waited for ever.
    ['a FIFO', (file: string) => (rmSync(file), execFileSync('mkfifo', [file]))],
  ])('a checkpoint %s counts as unreadable, unread: the open replays, verifies nothing against it, and removes it', async (_, spoil) => {
    const dir = tmp();
    const store = await Store.open({ dir, module: counterModule });
    for (let i = 0; i < 5; i++) await store.call('put', { id: `o${i}`, type: 't', n: i }, testCaller);
    const hash = store.stateHash();
    await store.close();
    const checkpoint = path.join(dir, 'log', checkpointFileName);
    expect(await readCheckpoint(path.join(dir, 'log'), nodeFileLayer)).toMatchObject({ offset: 4, stateHash: hash });
    spoil(checkpoint);
    const counting = countingFileLayer();
    expect(await readCheckpoint(path.join(dir, 'log'), counting)).toBe('unreadable');
    expect(counting.bytesRead).toBe(0);
    const reopened = await Store.open({ dir, module: counterModule });
    expect(reopened.report.checkpointVerified).toBe(false);
    expect(reopened.stateHash()).toBe(hash);
    expect(existsSync(checkpoint)).toBe(false);
    await reopened.close();
  });

  test.each([manifestFileName, binaryFileName])('a FIFO in place of the snapshot\'s %s is refused by what it is, and the store falls back to the log (before, the open waited for a writer for ever)', async (name) => {
    const { dir, snapshotDir, hash } = await storeWithSnapshot(20);
    const file = path.join(snapshotDir, name);
    rmSync(file);
    execFileSync('mkfifo', [file]);
    const store = await Store.open({ dir, module: counterModule });
    expect(store.report.snapshotOffset).toBe(-1);
    expect(store.report.snapshotsSkipped.join(' ')).toContain(`${name} is a FIFO, not a regular file`);
    expect(store.stateHash()).toBe(hash);
    await store.close();
  });

  test('a snapshot file of another size than its manifest says is refused with both sizes, and the store falls back to the log', async () => {
    const { dir, snapshotDir, hash } = await storeWithSnapshot(20);
    const file = path.join(snapshotDir, binaryFileName);
    const bytes = readFileSync(file).length;
    truncateSync(file, bytes - 1);
    const [ref] = await listSnapshots(dir, nodeFileLayer);
    const sizeProblem = `${binaryFileName} has ${bytes - 1} bytes, manifest says ${bytes}`;
    await expect(loadSnapshot(ref!, nodeFileLayer, schemas)).rejects.toThrow(sizeProblem);
    expect(await verifySnapshotFiles(ref!, nodeFileLayer)).toBe(sizeProblem);
    const store = await Store.open({ dir, module: counterModule });
    expect(store.report.snapshotOffset).toBe(-1);
    expect(store.report.snapshotsSkipped.join(' ')).toContain(sizeProblem);
    expect(store.stateHash()).toBe(hash);
    await store.close();
  });

  test('a snapshot file that ends early while it is read is refused, naming the byte where it ended', async () => {
    const { dir } = await storeWithSnapshot(20);
    const [ref] = await listSnapshots(dir, nodeFileLayer);
    const bytes = ref!.manifest!.files.binary.bytes;
    const endAt = Math.floor(bytes / 2);
    const loading = loadSnapshot(ref!, shortReads(100, endAt), schemas);
    await expect(loading).rejects.toBeInstanceOf(SnapshotInvalid);
    await expect(loading).rejects.toThrow(`${binaryFileName} ends at byte ${endAt}, manifest says ${bytes} bytes`);
  });
});
