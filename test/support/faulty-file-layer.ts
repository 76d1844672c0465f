/**
 * A FileLayer over the real disk that fails on demand, the way a real disk does:
 * ENOSPC from writev and writevSync (after writing part of the data), EIO from fdatasync (on the
 * thread pool or inline), ENOSPC from the write of a whole file (writeFileDurable) by name.
 */
import { fstatSync, promises as fsp, statSync } from 'node:fs';
import * as path from 'node:path';
import type { FileHandleLike, FileLayer } from '../../storage/io/file-layer.js';
import { durableWriteTmpFile, NodeFileLayer } from '../../storage/io/node-file-layer.js';

/** The error a real fdatasync gives for a failed writeback. */
function eio(what: string): Error {
  return Object.assign(new Error(`EIO: i/o error, ${what}`), { code: 'EIO' });
}

export class FaultyFileLayer extends NodeFileLayer {
  /** Fail the next N writev calls with ENOSPC (each after writing half its bytes). */
  enospcWrites = 0;
  /** Fail the next N datasync calls (on the pool or inline) with EIO. */
  datasyncFailures = 0;
  /** Every datasync, on the pool or inline. */
  datasyncCalls = 0;
  /** The datasyncs run inline (datasyncSync, on the calling thread). */
  datasyncInlineCalls = 0;
  /**
   * While set, every datasync waits for it (holds a fdatasync "in flight" until the test releases it).
   * An inline datasync cannot wait: it throws, so a test that holds syncs opens its store with
   * `syncInlineTxMax: 0`.
   */
  datasyncGate: Promise<void> | undefined;
  /** Pool datasyncs take these in call order and wait for each (after datasyncGate): a test settles them in any order. */
  datasyncGates: Promise<void>[] = [];
  /**
   * Base names (e.g. 'checkpoint.json') whose writeFileDurable fails with ENOSPC: the real write
   * runs, into a tmp file that is a link to /dev/full, which refuses every write with ENOSPC.
   */
  readonly enospcDurableWrites = new Set<string>();
  /** Lost writebacks reported so far (each description's datasync that heard one). */
  writebackErrorsReported = 0;
  /** Writeback errors recorded per file, by inode as Linux does (a renamed file keeps its errors). */
  private readonly writebackErrors = new Map<number, number>();
  /** Sees every writev (bytes asked) and datasync, per file, before any injected failure. */
  observe: ((file: string, op: 'writev' | 'datasync', bytes: number) => void) | undefined;

  /**
   * A page of `file` failed its writeback, reported the way Linux does (errseq): once to each open
   * file description, by its next datasync (on the pool or inline), which fails with EIO.
   * Descriptions opened after the loss do not hear it.
   */
  loseWriteback(file: string): void {
    const inode = statSync(file).ino;
    this.writebackErrors.set(inode, (this.writebackErrors.get(inode) ?? 0) + 1);
  }

  override async writeFileDurable(file: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (!this.enospcDurableWrites.has(path.basename(file))) return super.writeFileDurable(file, data);
    const tmp = durableWriteTmpFile(file);
    await fsp.rm(tmp, { force: true });
    await fsp.symlink('/dev/full', tmp);
    try {
      await super.writeFileDurable(file, data);
    } finally {
      // The link goes with the fault: a later write of the file would follow it to /dev/full again.
      await fsp.rm(tmp, { force: true });
    }
  }

  override async open(file: string, flags: 'r' | 'r+' | 'w' | 'wx'): Promise<FileHandleLike> {
    const inner = await super.open(file, flags);
    const layer = this;
    const inode = fstatSync(inner.fd).ino;
    let errorsHeard = layer.writebackErrors.get(inode) ?? 0;
    /** This description's check of the file's writeback errors: each is reported to it once. */
    const checkWriteback = (): void => {
      const errors = layer.writebackErrors.get(inode) ?? 0;
      if (errors === errorsHeard) return;
      errorsHeard = errors;
      layer.writebackErrorsReported++;
      throw eio('fdatasync (writeback lost)');
    };
    return {
      get fd() {
        return inner.fd;
      },
      async writev(buffers, position) {
        layer.observe?.(file, 'writev', buffers.reduce((n, b) => n + b.byteLength, 0));
        if (layer.enospcWrites > 0) {
          layer.enospcWrites--;
          const all = Buffer.concat(buffers.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
          await inner.writev([all.subarray(0, all.length >> 1)], position);
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        }
        return inner.writev(buffers, position);
      },
      writevSync(buffers, position) {
        layer.observe?.(file, 'writev', buffers.reduce((n, b) => n + b.byteLength, 0));
        if (layer.enospcWrites > 0) {
          layer.enospcWrites--;
          const all = Buffer.concat(buffers.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
          inner.writevSync([all.subarray(0, all.length >> 1)], position);
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        }
        return inner.writevSync(buffers, position);
      },
      truncateSync: (n) => inner.truncateSync(n),
      read: (b, o, l, p) => inner.read(b, o, l, p),
      async datasync() {
        layer.observe?.(file, 'datasync', 0);
        if (layer.datasyncGate) await layer.datasyncGate;
        const gate = layer.datasyncGates.shift();
        if (gate) await gate;
        layer.datasyncCalls++;
        if (layer.datasyncFailures > 0) {
          layer.datasyncFailures--;
          throw eio('fdatasync');
        }
        await inner.datasync();
        checkWriteback();
      },
      datasyncSync() {
        layer.observe?.(file, 'datasync', 0);
        if (layer.datasyncGate) throw new Error('FaultyFileLayer: a held fdatasync cannot run inline (open the store with syncInlineTxMax: 0)');
        layer.datasyncCalls++;
        layer.datasyncInlineCalls++;
        if (layer.datasyncFailures > 0) {
          layer.datasyncFailures--;
          throw eio('fdatasync');
        }
        inner.datasyncSync();
        checkWriteback();
      },
      truncate: (n) => inner.truncate(n),
      size: () => inner.size(),
      close: () => inner.close(),
    };
  }
}

export const asFileLayer = (l: FaultyFileLayer): FileLayer => l;
