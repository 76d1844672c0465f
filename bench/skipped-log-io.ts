/**
 * A file layer for the engine benchmark's ceiling line and `bench/engine-loop.ts --skip-log-io`:
 * the commitlog's segment writes and fdatasyncs do nothing and succeed at once; every other file
 * (lock, history, snapshots) is real. It measures the ceiling the engine's CPU allows on a host,
 * apart from the disk and from the kernel's work for it: the commits of such a loop are NOT
 * durable (docs/BENCHMARKS.md).
 */
import * as path from 'node:path';
import type { FileHandleLike, FileLayer } from '../storage/io/file-layer.js';
import { importBuilt } from './built.js';

const { NodeFileLayer } = await importBuilt<typeof import('../storage/io/node-file-layer.js')>('storage/io/node-file-layer.js');

/** The store's segments live in `<store>/log/` (storage/store.ts). */
const logDirName = 'log';

/** Bytes a write of `buffers` would write: what a skipped write reports written. */
function byteLength(buffers: readonly Uint8Array[]): number {
  return buffers.reduce((n, b) => n + b.byteLength, 0);
}

export class SkippedLogIoLayer extends NodeFileLayer implements FileLayer {
  override async open(file: string, flags: 'r' | 'r+' | 'w' | 'wx'): Promise<FileHandleLike> {
    const handle = await super.open(file, flags);
    if (path.basename(path.dirname(file)) !== logDirName) return handle;
    // The segment's own handle, but for its writes and syncs (as counting-file-layer.ts does for reads).
    return Object.create(handle, {
      writev: { value: (buffers: readonly Uint8Array[]) => Promise.resolve(byteLength(buffers)) },
      writevSync: { value: byteLength },
      datasync: { value: () => Promise.resolve() },
      datasyncSync: { value: () => undefined },
    }) as FileHandleLike;
  }
}
