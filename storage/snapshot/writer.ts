/**
 * Writes a snapshot from cloned (copy-on-write) tables while commits go on: the work is cut
 * into ~1 MiB chunks with a yield to the event loop between them, so a commit never waits
 * behind more than one chunk of serialisation.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { canonicalChunks, type TableState } from '../canonical.js';
import type { FileLayer } from '../io/file-layer.js';
import type { Row, TableSchema } from '../schema.js';
import { binaryFileName, jsonFileName, manifestFileName, snapshotDirName, snapshotFormatVersion, snapshotsDir, type SnapshotManifest } from './manifest.js';

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Serialisation work between two yields: small enough that a commit waits ~1 ms at most. */
export const snapshotChunkBytes = 64 * 1024;

class ChunkFile {
  private position = 0;
  private readonly hash = createHash('sha256');
  private constructor(private readonly handle: Awaited<ReturnType<FileLayer['open']>>) {}
  static async create(fl: FileLayer, file: string): Promise<ChunkFile> {
    return new ChunkFile(await fl.open(file, 'w'));
  }
  async write(chunk: Buffer): Promise<void> {
    await this.handle.writev([chunk], this.position);
    this.position += chunk.length;
    this.hash.update(chunk);
  }
  async finish(): Promise<{ bytes: number; sha256: string }> {
    await this.handle.datasync();
    await this.handle.close();
    return { bytes: this.position, sha256: this.hash.digest('hex') };
  }
  async abandon(): Promise<void> {
    await this.handle.close().catch(() => undefined);
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
  /** Resolves once `offset` is durable in the log: a manifest never points past the durable end. */
  readonly waitDurable: () => Promise<void>;
}

export async function writeSnapshot(input: WriteSnapshotInput): Promise<SnapshotManifest> {
  const { fl, tables, offset } = input;
  const root = snapshotsDir(input.storeDir);
  const dir = path.join(root, snapshotDirName(offset));
  await fl.mkdirp(root);
  await fl.rmdir(dir); // a leftover unfinished attempt at the same offset
  await fl.mkdirp(dir);
  const binary = await ChunkFile.create(fl, path.join(dir, binaryFileName));
  const json = await ChunkFile.create(fl, path.join(dir, jsonFileName));
  try {
    for (const chunk of canonicalChunks(tables, snapshotChunkBytes)) {
      await binary.write(chunk);
      await yieldToEventLoop();
    }
    for (const chunk of streamJson(tables, offset, snapshotChunkBytes)) {
      await json.write(chunk);
      await yieldToEventLoop();
    }
  } catch (error) {
    await binary.abandon();
    await json.abandon();
    throw error;
  }
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
  };
  await input.waitDurable();
  await fl.writeFileDurable(path.join(dir, manifestFileName), Buffer.from(JSON.stringify(manifest, null, 2)));
  await fl.fsyncDir(root);
  return manifest;
}

/** The JSON snapshot as chunks of about 1 MiB. */
function* streamJson(tables: readonly TableState[], offset: number, chunkBytes = 1 << 20): Generator<Buffer> {
  const sorted = [...tables].sort((a, b) => (a.schema.name < b.schema.name ? -1 : 1));
  let text = `{"format":${snapshotFormatVersion},"offset":${offset},"tables":{`;
  for (let ti = 0; ti < sorted.length; ti++) {
    const t = sorted[ti]!;
    text += `${ti ? ',' : ''}${JSON.stringify(t.schema.name)}:[`;
    let first = true;
    for (const [, row] of t.rows.entries()) {
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

