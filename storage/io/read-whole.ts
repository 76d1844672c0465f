/**
 * Reading a whole file that is small by contract (a manifest, a checkpoint, a spool): its size
 * is checked against a named limit before any byte is read, so a replaced or wrong file is
 * refused, never loaded.
 */
import * as path from 'node:path';
import type { FileHandleLike, FileLayer } from './file-layer.js';

/** Reads (and a backup's copies, and a file's hash) move through memory in pieces of this size, so a large file never sits in memory whole. */
export const readPieceBytes = 4 * 1024 * 1024;

/** A file over its limit, refused by its size. */
export class FileTooLarge extends Error {
  constructor(readonly file: string, readonly bytes: number, readonly bytesMax: number, readonly limitName: string) {
    super(`${path.basename(file)} has ${bytes} bytes, over ${bytesMax} (${limitName})`);
    this.name = 'FileTooLarge';
  }
}

/** Read exactly `bytes` from `handle` (from position 0) into one buffer; a shorter file is an error. */
export async function readExactly(handle: FileHandleLike, bytes: number, what: string): Promise<Buffer> {
  const buf = Buffer.alloc(bytes);
  let done = 0;
  while (done < bytes) {
    const n = await handle.read(buf, done, Math.min(readPieceBytes, bytes - done), done);
    if (n === 0) throw new Error(`${what}: file ended at ${done} bytes, ${bytes} expected`);
    done += n;
  }
  return buf;
}

/** The whole file, or FileTooLarge (named `limitName`) when it holds more than `bytesMax` bytes. */
export async function readBoundedFile(fl: FileLayer, file: string, bytesMax: number, limitName: string): Promise<Buffer> {
  const handle = await fl.open(file, 'r');
  try {
    const bytes = await handle.size();
    if (bytes > bytesMax) throw new FileTooLarge(file, bytes, bytesMax, limitName);
    return await readExactly(handle, bytes, file);
  } finally {
    await handle.close();
  }
}
