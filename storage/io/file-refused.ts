/**
 * Why a file was refused before any of it was read: too large for what it is, or not a regular
 * file at all. Each says what it is in its message, so a caller passes the message on as it is.
 */
import type { Stats } from 'node:fs';
import * as path from 'node:path';

export class FileRefused extends Error {}

/** A file over its limit, refused by its size. */
export class FileTooLarge extends FileRefused {
  constructor(readonly file: string, readonly bytes: number, readonly bytesMax: number, readonly limitName: string) {
    super(`${path.basename(file)} has ${bytes} bytes, over ${bytesMax} (${limitName})`);
    this.name = 'FileTooLarge';
  }
}

/** Something other than a regular file where the engine reads one (a directory, a FIFO, a device, a socket). */
export class NotARegularFile extends FileRefused {
  constructor(readonly file: string, readonly kind: string) {
    super(`${path.basename(file)} is ${kind}, not a regular file`);
    this.name = 'NotARegularFile';
  }
}

/** What a non-regular file is, in words (from fstat: a link is seen as what it points to). */
function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'an unknown kind of file';
}

/** Throws NotARegularFile unless `stats` (of `file`) is a regular file's. */
export function assertRegularFile(file: string, stats: Stats): void {
  if (!stats.isFile()) throw new NotARegularFile(file, fileKind(stats));
}
