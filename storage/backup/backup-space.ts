/**
 * Room for a backup at its destination. A backup writes its files, then a second copy of them
 * (the scratch store that proves the copy opens to its state hash), so it needs about
 * `backupFreeFactor` times its size free. Checked before anything is copied, so a full disk
 * refuses the backup with the figures instead of failing it half-way; an ENOSPC that still
 * happens (something else filled the disk meanwhile) gets the same hint.
 */
import { MemoryError } from '../errors.js';
import type { FreeBytesOf } from '../io/free-bytes.js';

/** Bytes free at the destination per byte of the backup: the copy and the copy that proves it. */
export const backupFreeFactor = 2;
export const backupSpaceHint =
  `free space at the destination, or choose one on a filesystem with room: a backup needs about ${backupFreeFactor}x its size free (its copy, and a second copy that proves it)`;

/** Refuses (MemoryError 'unavailable') when `dir`'s filesystem has less than backupFreeFactor x `backupBytes` free; statfs failing is not a refusal. */
export async function ensureBackupSpace(dir: string, backupBytes: number, freeBytesOf: FreeBytesOf): Promise<void> {
  const neededBytes = backupFreeFactor * backupBytes;
  const freeBytes = await freeBytesOf(dir).catch(() => Number.POSITIVE_INFINITY);
  if (freeBytes < neededBytes) {
    throw new MemoryError('unavailable', `not enough free space for this backup at ${dir}: it needs ${neededBytes} bytes free, ${freeBytes} are`, backupSpaceHint);
  }
}

/** The disk (or a quota) refused a write of the backup: said with the hint, the original kept as its cause. */
export function backupSpaceExhausted(dir: string, error: unknown): MemoryError | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return undefined;
  return Object.assign(new MemoryError('unavailable', `the backup at ${dir} ran out of space (${code}); nothing of it was kept`, backupSpaceHint), { cause: error });
}
