/** The data directory for operator commands: --data-dir, else the configuration (IOBOXX_DATA_DIR, in the environment or IOBOXX_CONFIG_FILE). */
import path from 'node:path';
import { filesystemOfDir } from '../../storage/io/filesystem-kind.js';
import { shellWord } from '../../storage/shell-word.js';
import { configWithFile } from '../config-file.js';

export const dataDirOptionHelp = 'data directory (overrides IOBOXX_DATA_DIR)';

/**
 * ` --data-dir DIR`, quoted for a POSIX shell where it must be, for a command a hint names: run
 * as printed it acts on the data directory this run used, not on whatever ./data or
 * IOBOXX_DATA_DIR is where the operator pastes it.
 */
export function dataDirArgument(dataDir: string): string {
  return ` --data-dir ${shellWord(dataDir)}`;
}

export function operatorDataDir(dataDirOption: string | undefined): string {
  if (dataDirOption !== undefined) return path.resolve(dataDirOption);
  return configWithFile({}).dataDir;
}

/** What the filesystem under a data directory means for a command: refused, served without durability, or fine. */
export type DataDirFilesystemVerdict =
  | { readonly refused: string }
  | { readonly notDurable: string }
  | undefined;

/**
 * Read before anything is made in `dataDir` (serve, and every command that takes --data-dir):
 * a pseudo filesystem (/proc, /sys, cgroup, ...) is refused in one line naming the setting (on
 * procfs the mkdir would never return); tmpfs or ramfs is served, with a warning, since a
 * developer may want a throwaway store there, but its commits do not survive a reboot.
 */
export async function dataDirFilesystemVerdict(dataDir: string): Promise<DataDirFilesystemVerdict> {
  const filesystem = await filesystemOfDir(dataDir);
  if (filesystem?.kind === 'pseudo') {
    return { refused: `the data directory ${dataDir} is on ${filesystem.name}${filesystem.existing === path.resolve(dataDir) ? '' : ` (at ${filesystem.existing})`}, a pseudo filesystem of the kernel that cannot keep a store: set IOBOXX_DATA_DIR or --data-dir to a directory on a disk` };
  }
  if (filesystem?.kind === 'memory') {
    return { notDurable: `the data directory ${dataDir} is on ${filesystem.name}, in memory: its commits do not survive a reboot (not durable); set IOBOXX_DATA_DIR or --data-dir to a directory on a disk to keep them` };
  }
  return undefined;
}
