/**
 * Byte copies for backup and restore: every copy is hashed as it is written and made durable
 * (fdatasync of the file; the caller fsyncs the directories once all names exist).
 */
import { createHash } from 'node:crypto';
import type { FileHandleLike, FileLayer } from '../io/file-layer.js';
import type { FileDigest } from '../io/hash-file.js';
import { readPieceBytes } from '../io/read-whole.js';

/** What a copy wrote: the same digest a check of the file computes (io/hash-file.ts). */
export type CopiedFile = FileDigest;

/** Write `data` as a new file (refusing to overwrite) and fdatasync it. */
export async function writeNewFile(fl: FileLayer, file: string, data: Buffer): Promise<CopiedFile> {
  const out = await fl.open(file, 'wx');
  try {
    for (let p = 0; p < data.length; p += readPieceBytes) await out.writev([data.subarray(p, p + readPieceBytes)], p);
    await out.datasync();
  } finally {
    await out.close();
  }
  return { bytes: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

/** Stream the first `bytes` of an open file into a new file, hashing on the way. */
export async function copyOpenFile(
  fl: FileLayer,
  source: FileHandleLike,
  bytes: number,
  destination: string,
  onBytes?: (n: number) => void,
): Promise<CopiedFile> {
  const out = await fl.open(destination, 'wx');
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(Math.min(readPieceBytes, Math.max(bytes, 1)));
  try {
    let done = 0;
    while (done < bytes) {
      const n = await source.read(chunk, 0, Math.min(chunk.length, bytes - done), done);
      if (n === 0) throw new Error(`${destination}: source ended at ${done} bytes, ${bytes} expected`);
      const piece = chunk.subarray(0, n);
      hash.update(piece);
      await out.writev([piece], done);
      done += n;
      onBytes?.(n);
    }
    await out.datasync();
  } finally {
    await out.close();
  }
  return { bytes, sha256: hash.digest('hex') };
}
