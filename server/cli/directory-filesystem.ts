/**
 * What the filesystem under a directory a command writes means for it, read before anything is
 * made there: a pseudo filesystem (/proc, /sys, cgroup, ...) is refused in one line naming what to
 * change (on procfs Node 20's recursive mkdir never returns; on sysfs it fails EPERM); tmpfs or
 * ramfs is used, with a warning, since a developer may want a throwaway copy there, but what it
 * holds does not survive a reboot.
 */
import path from 'node:path';
import { filesystemOfDir } from '../../storage/io/filesystem-kind.js';

/** Whose directory it is, as a verdict names it and says what to change. */
export interface DirectoryRole {
  /** How the verdict names the directory ("the data directory"). */
  readonly label: string;
  /** What it is to hold ("a store"). */
  readonly holds: string;
  /** What to change, for a directory on a filesystem that cannot keep anything. */
  readonly refusedFix: string;
  /** What a reboot loses, and what to change, for a directory in memory. */
  readonly inMemory: string;
}

export const dataDirRole: DirectoryRole = {
  label: 'the data directory',
  holds: 'a store',
  refusedFix: 'set IOBOXX_DATA_DIR or --data-dir to a directory on a disk',
  inMemory: 'its commits do not survive a reboot (not durable); set IOBOXX_DATA_DIR or --data-dir to a directory on a disk to keep them',
};

export const backupDirRole: DirectoryRole = {
  label: 'the backup directory',
  holds: 'a backup',
  refusedFix: 'give a DIR on a disk',
  inMemory: 'the backup does not survive a reboot (not durable); give a DIR on a disk to keep it',
};

export type DirectoryFilesystemVerdict =
  | { readonly refused: string }
  | { readonly notDurable: string }
  | undefined;

export async function directoryFilesystemVerdict(dir: string, role: DirectoryRole): Promise<DirectoryFilesystemVerdict> {
  const filesystem = await filesystemOfDir(dir);
  if (filesystem?.kind === 'pseudo') {
    const at = filesystem.existing === path.resolve(dir) ? '' : ` (at ${filesystem.existing})`;
    return { refused: `${role.label} ${dir} is on ${filesystem.name}${at}, a pseudo filesystem of the kernel that cannot keep ${role.holds}: ${role.refusedFix}` };
  }
  if (filesystem?.kind === 'memory') return { notDurable: `${role.label} ${dir} is on ${filesystem.name}, in memory: ${role.inMemory}` };
  return undefined;
}
