/**
 * Room for a backup at its destination, and for a restore at its target. A backup writes its
 * files, then a second copy of them (the scratch store that proves the copy opens to its state
 * hash); a restore writes the backup's files, then opens that copy to prove it (which may write a
 * snapshot and a checkpoint of the state). Either needs about `backupFreeFactor` times the
 * backup's size free. Checked before anything is copied, so a full disk refuses the work with the
 * figures instead of failing it half-way; an ENOSPC that still happens (something else filled the
 * disk meanwhile) gets the same hint.
 */
import { MemoryError } from '../errors.js';
import { freeBytesShort, type FreeBytesOf } from '../io/free-bytes.js';

/** Bytes free at the destination per byte of the backup: the copy and the copy that proves it. */
export const backupFreeFactor = 2;
export const backupSpaceHint =
  `free space at the destination, or choose one on a filesystem with room: a backup needs about ${backupFreeFactor}x its size free (its copy, and a second copy that proves it)`;
export const restoreSpaceHint =
  `free space on the restore target's filesystem, or restore onto one with room: a restore needs about ${backupFreeFactor}x the backup's size free (its copy, and what opening the copy to prove it writes)`;

/** What the space is for: the message and the hint say it. */
export type SpaceUse = 'backup' | 'restore';
const spaceHints: Record<SpaceUse, string> = { backup: backupSpaceHint, restore: restoreSpaceHint };

/** Refuses (MemoryError 'unavailable') when `dir`'s filesystem has less than backupFreeFactor x `backupBytes` free; statfs failing is not a refusal. */
export async function ensureBackupSpace(dir: string, backupBytes: number, freeBytesOf: FreeBytesOf, use: SpaceUse = 'backup'): Promise<void> {
  const neededBytes = backupFreeFactor * backupBytes;
  const freeBytes = await freeBytesShort(dir, neededBytes, freeBytesOf);
  if (freeBytes !== undefined) {
    throw new MemoryError('unavailable', `not enough free space for this ${use} at ${dir}: it needs ${neededBytes} bytes free, ${freeBytes} are`, spaceHints[use]);
  }
}

/** The disk (or a quota) refused a write of the backup or restore: said with the hint, the original kept as its cause. */
export function backupSpaceExhausted(dir: string, error: unknown, use: SpaceUse = 'backup'): MemoryError | undefined {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code !== 'ENOSPC' && code !== 'EDQUOT') return undefined;
  return Object.assign(new MemoryError('unavailable', `the ${use} at ${dir} ran out of space (${code}); nothing of it was kept`, spaceHints[use]), { cause: error });
}
