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
