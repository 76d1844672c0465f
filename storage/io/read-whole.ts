/**
 * Reading a whole file that is small by contract (a manifest, a checkpoint, a spool): its size
 * is checked against a named limit before any byte is read, so a replaced or wrong file is
 * refused, never loaded.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';
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

/** Something other than a regular file where a small file is read (a directory, a FIFO, a device, a symbolic link). */
export class NotARegularFile extends Error {
  constructor(readonly file: string, readonly kind: string) {
    super(`${path.basename(file)} is ${kind}, not a regular file`);
    this.name = 'NotARegularFile';
  }
}

/** What a non-regular file is, in words (for NotARegularFile). */
export function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSymbolicLink()) return 'a symbolic link';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * The whole of a small regular file, read on the calling thread (what is read before anything
 * else runs, or by a synchronous status): FileTooLarge over `bytesMax`, NotARegularFile for
 * anything else. Opened non-blocking, so a FIFO named by mistake is refused rather than waited
 * on forever (its open and its read would block with no writer).
 */
export function readSmallFileSync(file: string, bytesMax: number, limitName: string): Buffer {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new NotARegularFile(file, fileKind(stats));
    if (stats.size > bytesMax) throw new FileTooLarge(file, stats.size, bytesMax, limitName);
    const bytes = readFileSync(fd);
    // The file grew between fstat and read (another writer): the limit still holds.
    if (bytes.length > bytesMax) throw new FileTooLarge(file, bytes.length, bytesMax, limitName);
    return bytes;
  } finally {
    closeSync(fd);
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
