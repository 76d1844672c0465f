/**
 * Writes a snapshot from cloned (copy-on-write) tables while commits go on. Two things keep
 * it from stalling them:
 *  - the event loop: serialisation runs in slices of at most `snapshotSliceMsMax` of work,
 *    each followed by its write and a yield, so a commit waits behind one slice at most;
 *  - the disk: the files are fdatasync'ed every `snapshotSyncBytes`. One sync of hundreds of
 *    MiB at the end would hold the disk (and, on ext4, the journal commit that the
 *    commitlog's fdatasync needs) for as long as that flush takes.
 */
import { createHash, type Hash } from 'node:crypto';
import * as path from 'node:path';
import { canonicalChunks, type TableState } from '../canonical.js';
import { yieldToEventLoop } from '../io/event-loop.js';
import type { FileHandleLike, FileLayer } from '../io/file-layer.js';
import { historyRecord, type StoreHistory } from '../history.js';
import type { Row, TableSchema } from '../schema.js';
import { readBoundedFile } from '../io/read-whole.js';
import { binaryFileName, jsonFileName, manifestBytesMax, manifestFileName, snapshotDirName, snapshotFormatVersion, snapshotsDir, type SnapshotManifest } from './manifest.js';
import { listSnapshots } from './reader.js';

/** Serialisation work between two yields: a commit arriving meanwhile waits this long at most. */
export const snapshotSliceMsMax = 2;
/** Serialised bytes per piece taken from the generators: small, so a slice stops close to its time bound. */
export const snapshotPieceBytes = 16 * 1024;
/** One slice writes at most this much (bounds memory when serialisation is fast). */
export const snapshotSliceBytesMax = 4 * 1024 * 1024;
/** Flush the snapshot files to disk in steps of this size, never as one big sync at the end. */
export const snapshotSyncBytes = 8 * 1024 * 1024;

class ChunkFile {
  private closed = false;
  private position = 0;
  private syncedTo = 0;
  private readonly hash: Hash = createHash('sha256');
  private constructor(private readonly handle: FileHandleLike) {}
  static async create(fl: FileLayer, file: string): Promise<ChunkFile> {
    return new ChunkFile(await fl.open(file, 'w'));
  }
  /** Hash one piece (part of the slice's work, so it counts against the slice's time). */
  digest(piece: Buffer): void {
    this.hash.update(piece);
  }
  async write(pieces: readonly Buffer[]): Promise<void> {
    let bytes = 0;
    for (const piece of pieces) bytes += piece.length;
    await this.handle.writev(pieces, this.position);
    this.position += bytes;
    if (this.position - this.syncedTo >= snapshotSyncBytes) {
      await this.handle.datasync();
      this.syncedTo = this.position;
    }
  }
  async finish(): Promise<{ bytes: number; sha256: string }> {
    await this.handle.datasync();
    this.closed = true;
    await this.handle.close();
    return { bytes: this.position, sha256: this.hash.digest('hex') };
  }
  async abandon(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close().catch(() => undefined);
  }
}

/** Serialise `pieces` into `file` in time-bounded slices, yielding to the event loop after each. */
async function writeSliced(pieces: Iterator<Buffer>, file: ChunkFile): Promise<void> {
  for (;;) {
    const sliceEndMs = performance.now() + snapshotSliceMsMax;
    const slice: Buffer[] = [];
    let sliceBytes = 0;
    let done = false;
    do {
      const next = pieces.next();
      if (next.done) {
        done = true;
        break;
      }
      file.digest(next.value);
      slice.push(next.value);
      sliceBytes += next.value.length;
    } while (performance.now() < sliceEndMs && sliceBytes < snapshotSliceBytesMax);
    if (slice.length > 0) await file.write(slice);
    if (done) return;
    // The write's completion runs in the poll phase; this lets a group commit queued for the
    // check phase go first.
    await yieldToEventLoop();
  }
}

/** JSON form of a row: bytes and vectors tagged so the file is plain JSON. */
export function rowToJson(schema: TableSchema, row: Row): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const col of schema.columns) {
    const v = row[col.name] ?? null;
    if (v instanceof Float32Array) out[col.name] = { $f32: Array.from(v) };
    else if (v instanceof Uint8Array) out[col.name] = { $bytes: Buffer.from(v).toString('base64') };
    else out[col.name] = v;
  }
  return out;
}

export interface WriteSnapshotInput {
  readonly storeDir: string;
  readonly fl: FileLayer;
  readonly tables: readonly TableState[];
  readonly offset: number;
  readonly nowMs: number;
  /** The store's history, recorded in the manifest: where the id survives a lost history.json (history-evidence.ts). */
  readonly history: StoreHistory;
  /** Resolves once `offset` is durable in the log: a manifest never points past the durable end. */
  readonly waitDurable: () => Promise<void>;
}

/**
 * Write the snapshot of `tables` at `offset`. A write that fails at any step (a full disk, the
 * offset rolled back) removes its directory before it rejects: half a snapshot is never loaded,
 * and left behind it would hold the space a full disk is short of.
 */
export async function writeSnapshot(input: WriteSnapshotInput): Promise<SnapshotManifest> {
  const { fl, tables, offset } = input;
  const root = snapshotsDir(input.storeDir);
  const dir = path.join(root, snapshotDirName(offset));
  await fl.mkdirp(root);
  await fl.rmdir(dir); // a leftover unfinished attempt at the same offset
  const files: ChunkFile[] = [];
  try {
    await fl.mkdirp(dir);
    const binary = await ChunkFile.create(fl, path.join(dir, binaryFileName));
    files.push(binary);
    const json = await ChunkFile.create(fl, path.join(dir, jsonFileName));
    files.push(json);
    await writeSliced(canonicalChunks(tables, snapshotPieceBytes), binary);
    await writeSliced(streamJson(tables, offset, snapshotPieceBytes), json);
    const binaryEntry = await binary.finish();
    const jsonEntry = await json.finish();
    await fl.fsyncDir(dir);
    const manifest: SnapshotManifest = {
      format: snapshotFormatVersion,
      offset,
      createdAtMs: input.nowMs,
      stateHash: binaryEntry.sha256,
      tables: Object.fromEntries(tables.map((t) => [t.schema.name, t.rows.size])),
      files: { binary: binaryEntry, json: jsonEntry },
      history: historyRecord(input.history),
    };
    await input.waitDurable();
    await fl.writeFileDurable(path.join(dir, manifestFileName), Buffer.from(JSON.stringify(manifest, null, 2)));
    await fl.fsyncDir(root);
    return manifest;
  } catch (error) {
    for (const file of files) await file.abandon();
    await fl.rmdir(dir).catch(() => undefined); // an open's retention removes what this could not
    throw error;
  }
}

/**
 * Record `history` in the manifests of the snapshots in `storeDir` (durably, each), the state
 * files untouched: a restore's copies were written under the backed-up store's history, and a
 * copy naming that one would hand the parent's id back to a restored store that lost its
 * history.json (history-evidence.ts). The restored history shares every offset up to the fork
 * with its parent, so the snapshots (all at or before it) are as much its own. A manifest that
 * does not parse is left as it is: the open skips that snapshot anyway.
 */
export async function recordHistoryInManifests(storeDir: string, history: StoreHistory, fl: FileLayer): Promise<void> {
  for (const ref of await listSnapshots(storeDir, fl)) {
    if (!ref.manifest) continue;
    const file = path.join(ref.dir, manifestFileName);
    // The file's own keys, not the parsed manifest's: a key a later format adds is kept.
    const raw = JSON.parse((await readBoundedFile(fl, file, manifestBytesMax, 'manifestBytesMax')).toString('utf8')) as Record<string, unknown>;
    await fl.writeFileDurable(file, Buffer.from(JSON.stringify({ ...raw, history: historyRecord(history) }, null, 2)));
  }
}

/** A row kept encoded, decoded for the JSON form. */
function decodeStored(t: TableState, ref: number): Row {
  if (!t.arena) throw new Error(`snapshot: ${t.schema.name} holds encoded rows but no arena`);
  return t.arena.decode(t.schema, ref);
}

/** The JSON snapshot as pieces of about `chunkBytes`. */
function* streamJson(tables: readonly TableState[], offset: number, chunkBytes: number): Generator<Buffer> {
  const sorted = [...tables].sort((a, b) => (a.schema.name < b.schema.name ? -1 : 1));
  let text = `{"format":${snapshotFormatVersion},"offset":${offset},"tables":{`;
  for (let ti = 0; ti < sorted.length; ti++) {
    const t = sorted[ti]!;
    text += `${ti ? ',' : ''}${JSON.stringify(t.schema.name)}:[`;
    let first = true;
    for (const [, stored] of t.rows.entries()) {
      const row = typeof stored === 'number' ? decodeStored(t, stored) : stored;
      text += (first ? '' : ',') + JSON.stringify(rowToJson(t.schema, row));
      first = false;
      if (text.length >= chunkBytes) {
        yield Buffer.from(text);
        text = '';
      }
    }
    text += ']';
  }
  yield Buffer.from(text + '}}');
}

