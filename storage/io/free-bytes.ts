/**
 * Free space on the filesystem holding a directory, as an unprivileged writer sees it (statfs:
 * available blocks x block size; root's reserve is not ours). Read where a decision needs it (a
 * scrape, a readiness check, a close-time snapshot, a backup), never per commit. A seam: tests
 * pass their own `FreeBytesOf` to play a full disk.
 */
import { statfs } from 'node:fs/promises';

export type FreeBytesOf = (dir: string) => Promise<number>;

export const statfsFreeBytes: FreeBytesOf = async (dir) => {
  const stats = await statfs(dir);
  return stats.bavail * stats.bsize;
};

/**
 * The free bytes at `dir` when they are fewer than `neededBytes`; undefined when there is room,
 * or when statfs cannot tell (the work is then tried, and a full disk still fails it cleanly).
 */
export async function freeBytesShort(dir: string, neededBytes: number, freeBytesOf: FreeBytesOf): Promise<number | undefined> {
  const freeBytes = await freeBytesOf(dir).catch(() => Number.POSITIVE_INFINITY);
  return freeBytes < neededBytes ? freeBytes : undefined;
}
