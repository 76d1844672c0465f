/**
 * Finding and loading snapshots. Loading asserts the other side of the writer's boundary:
 * the file's size and SHA-256 match the manifest, and that SHA-256 is the canonical state
 * hash (the file is the canonical stream), so a loaded state is a verified state.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { KeysNotAscending, stringTreeFromSortedInSlices, type BTree } from '../btree.js';
import { LoopSlices } from '../io/event-loop.js';
import type { FileLayer } from '../io/file-layer.js';
import { TableNotInModule } from '../errors.js';
import { hashFile } from '../io/hash-file.js';
import { readBoundedFile } from '../io/read-whole.js';
import { msgpackValueEnd } from '../msgpack-extent.js';
import { RowArena, type StoredRow } from '../row-arena.js';
import { encodedRowKey, fieldsToRow, primaryKeyColumnIndexes, rowUnpackr } from '../row-codec.js';
import { rowsMaxDefault, type TableSchema, type Value } from '../schema.js';
import { binaryFileName, jsonFileName, manifestBytesMax, manifestFileName, manifestSchema, parseSnapshotDirName, snapshotsDir, type SnapshotManifest } from './manifest.js';

/**
 * Loading gives the event loop a turn whenever the open's slices say so (io/event-loop.ts), so one
 * tenant's open of a large store does not stall every other tenant's calls (a 1M-object store's
 * load held the event loop for 5.3 s in one piece). The hash looks at the clock after each piece
 * of this many bytes (~1 ms of SHA-256 here); the decode every loopSliceCheckItems rows.
 */
export const snapshotHashChunkBytes = 1024 * 1024;
/** Bytes per read of a snapshot file: the thread pool reads one chunk while this thread hashes the one before. */
export const snapshotReadChunkBytes = 8 * 1024 * 1024;

/** A snapshot file of another size than its manifest says, ending early, or unreadable (the hash is the caller's to compare). */
class FileMismatch extends Error {}

/**
 * A snapshot file read whole and hashed (SHA-256) as it arrives, with a turn whenever `slices`
 * say so. The hash of a chunk runs while the next one is read, so the read (the kernel's copy and,
 * on this VM, the faults of fresh memory: ~11 us a page) no longer comes first and the hash after
 * it: a 320 MB file (a 1M-object memory-module tenant) took 2.5-2.7 s read then hashed, 1.6 s so.
 * The file must hold exactly `bytes` bytes, the manifest's count.
 */
async function readHashed(fl: FileLayer, file: string, bytes: number, slices: LoopSlices): Promise<{ buf: Buffer; sha: string }> {
  const name = path.basename(file);
  const handle = await fl.open(file, 'r').catch((e: Error) => {
    throw new FileMismatch(`cannot read ${name}: ${e.message}`);
  });
  let reading: Promise<number> | undefined;
  try {
    const size = await handle.size();
    if (size !== bytes) throw new FileMismatch(`${name} has ${size} bytes, manifest says ${bytes}`);
    const buf = Buffer.allocUnsafeSlow(size);
    const readChunk = async (start: number): Promise<number> => {
      const end = Math.min(size, start + snapshotReadChunkBytes);
      for (let at = start; at < end; ) {
        const n = await handle.read(buf, at, end - at, at).catch((e: Error) => {
          throw new FileMismatch(`cannot read ${name}: ${e.message}`);
        });
        if (n === 0) throw new FileMismatch(`${name} ends at byte ${at}, manifest says ${bytes} bytes`);
        at += n;
      }
      return end;
    };
    const hash = createHash('sha256');
    reading = size > 0 ? readChunk(0) : undefined;
    for (let start = 0; start < size; ) {
      const end = await reading!;
      reading = end < size ? readChunk(end) : undefined;
      for (let at = start; at < end; at += snapshotHashChunkBytes) {
        hash.update(buf.subarray(at, Math.min(end, at + snapshotHashChunkBytes)));
        if (slices.due(0)) await slices.turn();
      }
      start = end;
    }
    return { buf, sha: hash.digest('hex') };
  } finally {
    await reading?.catch(() => undefined); // no read may still be writing into the buffer, or on the handle, past here
    await handle.close();
  }
}

export interface SnapshotRef {
  readonly dir: string;
  readonly offset: number;
  /** Undefined when the manifest is missing or invalid (an unfinished or damaged snapshot). */
  readonly manifest?: SnapshotManifest;
  readonly problem?: string;
}

export class SnapshotInvalid extends Error {
  constructor(readonly dir: string, reason: string) {
    super(`snapshot ${dir}: ${reason}`);
  }
}

/** All snapshot directories, newest first. */
export async function listSnapshots(storeDir: string, fl: FileLayer): Promise<SnapshotRef[]> {
  const root = snapshotsDir(storeDir);
  if (!(await fl.exists(root))) return [];
  const refs: SnapshotRef[] = [];
  for (const name of await fl.readdir(root)) {
    const offset = parseSnapshotDirName(name);
    if (offset === undefined) continue;
    const dir = path.join(root, name);
    try {
      const raw = JSON.parse((await readBoundedFile(fl, path.join(dir, manifestFileName), manifestBytesMax, 'manifestBytesMax')).toString('utf8')) as unknown;
      const manifest = manifestSchema.parse(raw);
      if (manifest.offset !== offset) throw new Error(`manifest offset ${manifest.offset} in directory ${name}`);
      refs.push({ dir, offset, manifest });
    } catch (error) {
      refs.push({ dir, offset, problem: `manifest unreadable: ${(error as Error).message.split('\n')[0]}` });
    }
  }
  return refs.sort((a, b) => b.offset - a.offset);
}

export interface LoadedSnapshot {
  readonly manifest: SnapshotManifest;
  /** Each table's rows, kept encoded: references into the table's arena (which holds the file). */
  readonly tables: Map<string, BTree<string, StoredRow>>;
  readonly arenas: Map<string, RowArena>;
}

export async function loadSnapshot(
  ref: SnapshotRef,
  fl: FileLayer,
  schemas: ReadonlyMap<string, TableSchema>,
  onProgress?: (done: number, total: number) => void,
  slices: LoopSlices = new LoopSlices(),
): Promise<LoadedSnapshot> {
  const manifest = ref.manifest;
  if (!manifest) throw new SnapshotInvalid(ref.dir, ref.problem ?? 'no manifest');
  const { buf, sha } = await readHashed(fl, path.join(ref.dir, binaryFileName), manifest.files.binary.bytes, slices).catch((e: Error) => {
    throw new SnapshotInvalid(ref.dir, e instanceof FileMismatch ? e.message : `cannot read ${binaryFileName}: ${e.message}`);
  });
  // SHA-256 on this thread, before anything is decoded. It used to run on the thread pool
  // (WebCrypto) beside the decode, but WebCrypto copies its input first, and a fresh copy of a
  // large file costs more here (page faults: about 0.7 s for 60 MB) than hashing it (0.1-0.2 s).
  if (sha !== manifest.files.binary.sha256 || sha !== manifest.stateHash) {
    throw new SnapshotInvalid(ref.dir, `${binaryFileName} hash ${sha} does not match the manifest`);
  }
  return { manifest, ...(await decodeTables(ref, manifest, buf, schemas, onProgress, slices)) };
}

/**
 * The canonical stream's tables, each tree built from its rows in key order. Rows are not
 * decoded: each one's extent is walked, its key read from its bytes, and the tree holds a
 * reference to it in the file's buffer, which the table's arena adopts. A key out of order or
 * repeated means the file is not canonical: the tree build finds it.
 */
async function decodeTables(
  ref: SnapshotRef,
  manifest: SnapshotManifest,
  buf: Buffer,
  schemas: ReadonlyMap<string, TableSchema>,
  onProgress: ((done: number, total: number) => void) | undefined,
  slices: LoopSlices,
): Promise<{ tables: Map<string, BTree<string, StoredRow>>; arenas: Map<string, RowArena> }> {
  const tables = new Map<string, BTree<string, StoredRow>>();
  const arenas = new Map<string, RowArena>();
  const total = Object.values(manifest.tables).reduce((a, b) => a + b, 0);
  let done = 0;
  let p = 0;
  while (p < buf.length) {
    const headerEnd = msgpackValueEnd(buf, p, buf.length);
    if (headerEnd === undefined) throw new SnapshotInvalid(ref.dir, `table header at byte ${p} is not one msgpack value`);
    const header = rowUnpackr.unpack(buf, { start: p, end: headerEnd }) as unknown;
    if (!Array.isArray(header) || header.length !== 2 || typeof header[0] !== 'string') throw new SnapshotInvalid(ref.dir, `no table header at byte ${p}`);
    const [name, count] = header as [string, number];
    const schema = schemas.get(name);
    // A module mismatch, not damage: skipping the snapshot for an older one would only hide the table's rows.
    if (!schema) throw new TableNotInModule(name, `snapshot ${ref.dir}`);
    if (manifest.tables[name] !== count) throw new SnapshotInvalid(ref.dir, `table ${name} has ${count} rows, manifest says ${manifest.tables[name]}`);
    if (!(Number.isSafeInteger(count) && count >= 0 && count <= (schema.rowsMax ?? rowsMaxDefault))) {
      throw new SnapshotInvalid(ref.dir, `table ${name} claims ${count} rows`);
    }
    if (tables.has(name)) throw new SnapshotInvalid(ref.dir, `table ${name} appears twice`);
    p = headerEnd;
    const rowsStart = p;
    const keyColumns = primaryKeyColumnIndexes(schema);
    const keyParts = new Array<Value>(keyColumns.length).fill(null);
    const keys = new Array<string>(count);
    // Positions relative to the table's first row first; references once the arena adopted the bytes.
    const values = new Array<StoredRow>(count);
    for (let i = 0; i < count; i++) {
      if (slices.due(i)) {
        onProgress?.(done + i, total);
        await slices.turn();
      }
      if (p >= buf.length) throw new SnapshotInvalid(ref.dir, `snapshot ends ${count - i} rows early`);
      const end = msgpackValueEnd(buf, p, buf.length);
      if (end === undefined) throw new SnapshotInvalid(ref.dir, `table ${name}: row ${i} at byte ${p} is not one msgpack value`);
      keys[i] = encodedRowKey(schema, keyColumns, keyParts, buf, p, end);
      values[i] = p - rowsStart;
      p = end;
    }
    const arena = new RowArena();
    const toRef = arena.adopt(buf.subarray(rowsStart, p));
    for (let i = 0; i < count; i++) {
      if (slices.due(i)) await slices.turn();
      const position = values[i] as number;
      // A table too large for references (past arenaChunksMax chunks) is held as row objects.
      values[i] = toRef ? toRef(position) : fieldsToRow(schema, rowUnpackr.unpack(buf, { start: rowsStart + position, end: msgpackValueEnd(buf, rowsStart + position, p)! }));
    }
    // The build checks the key order (once, for every table): a key out of order or repeated means the file is not canonical.
    const tree = await stringTreeFromSortedInSlices(keys, values, slices).catch((error: unknown) => {
      throw error instanceof KeysNotAscending ? new SnapshotInvalid(ref.dir, `table ${name}: row ${error.index} is out of key order or repeats a key`) : error;
    });
    tables.set(name, tree);
    arenas.set(name, arena);
    done += count;
    onProgress?.(done, total);
    if (slices.due(0)) await slices.turn();
  }
  return { tables, arenas };
}

/** Full check of a snapshot's files (binary and JSON) without loading it: one read piece in memory, not a file. */
export async function verifySnapshotFiles(ref: SnapshotRef, fl: FileLayer): Promise<string | undefined> {
  if (!ref.manifest) return ref.problem ?? 'no manifest';
  for (const [name, entry] of [[binaryFileName, ref.manifest.files.binary], [jsonFileName, ref.manifest.files.json]] as const) {
    const digest = await hashFile(fl, path.join(ref.dir, name)).catch((error: Error) => error);
    if (digest instanceof Error) return `cannot read ${name}: ${digest.message}`;
    if (digest.bytes !== entry.bytes) return `${name} has ${digest.bytes} bytes, manifest says ${entry.bytes}`;
    if (digest.sha256 !== entry.sha256) return `${name} does not match the manifest`;
  }
  return undefined;
}
