/**
 * A file layer for `bench/engine-loop.ts --skip-log-io`: the commitlog's segment writes and
 * fdatasyncs do nothing and succeed at once; every other file (lock, history, snapshots) is real.
 * It measures the ceiling the engine's CPU allows on a host, apart from the disk and from the
 * kernel's work for it: the commits of such a loop are NOT durable. An instrument for experiments
 * (docs/BENCHMARKS.md); the figures of record are `npm run bench`'s.
 */
import * as path from 'node:path';
import type { FileHandleLike, FileLayer } from '../storage/io/file-layer.js';
import { importBuilt } from './built.js';

const { NodeFileLayer } = await importBuilt<typeof import('../storage/io/node-file-layer.js')>('storage/io/node-file-layer.js');

/** The store's segments live in `<store>/log/` (storage/store.ts). */
const logDirName = 'log';

function byteLength(buffers: readonly Uint8Array[]): number {
  let bytes = 0;
  for (const b of buffers) bytes += b.byteLength;
  return bytes;
}

/** A segment's handle whose writes and syncs are skipped; reads, truncates and close are the file's own. */
class SkippedIoHandle implements FileHandleLike {
  constructor(private readonly file: FileHandleLike) {}
  get fd(): number {
    return this.file.fd;
  }
  writev(buffers: readonly Uint8Array[]): Promise<number> {
    return Promise.resolve(byteLength(buffers));
  }
  writevSync(buffers: readonly Uint8Array[]): number {
    return byteLength(buffers);
  }
  truncateSync(length: number): void {
    this.file.truncateSync(length);
  }
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.file.read(buffer, offset, length, position);
  }
  datasync(): Promise<void> {
    return Promise.resolve();
  }
  datasyncSync(): void {}
  truncate(length: number): Promise<void> {
    return this.file.truncate(length);
  }
  size(): Promise<number> {
    return this.file.size();
  }
  close(): Promise<void> {
    return this.file.close();
  }
}

export class SkippedLogIoLayer extends NodeFileLayer implements FileLayer {
  override async open(file: string, flags: 'r' | 'r+' | 'w' | 'wx'): Promise<FileHandleLike> {
    const handle = await super.open(file, flags);
    return path.basename(path.dirname(file)) === logDirName ? new SkippedIoHandle(handle) : handle;
  }
}
