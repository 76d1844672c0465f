/**
 * A file's size and SHA-256, read in pieces through one reused buffer: a check of a large file
 * (a backup's copy, a snapshot's JSON) holds one piece in memory, never the file.
 */
import { createHash } from 'node:crypto';
import type { FileLayer } from './file-layer.js';
import { readPieceBytes } from './read-whole.js';

export interface FileDigest {
  readonly bytes: number;
  readonly sha256: string;
}

/** Size and SHA-256 of a whole file; `onBytes(n)` after each piece, for a progress bar. */
export async function hashFile(fl: FileLayer, file: string, onBytes?: (n: number) => void): Promise<FileDigest> {
  const handle = await fl.open(file, 'r');
  const hash = createHash('sha256');
  try {
    const size = await handle.size();
    const chunk = Buffer.alloc(Math.min(readPieceBytes, Math.max(size, 1)));
    let done = 0;
    for (;;) {
      const n = await handle.read(chunk, 0, chunk.length, done);
      if (n === 0) break;
      hash.update(chunk.subarray(0, n));
      done += n;
      onBytes?.(n);
    }
    return { bytes: done, sha256: hash.digest('hex') };
  } finally {
    await handle.close();
  }
}
