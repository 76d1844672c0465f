/**
 * The kind of filesystem a directory is on, from statfs's f_type (the magic numbers of
 * linux/magic.h). A pseudo filesystem (proc, sysfs, cgroup, ...) cannot keep a store at all: a
 * mkdir there fails, and on procfs Node 20's recursive mkdir never returns. A memory filesystem
 * (tmpfs, ramfs) keeps one only until the machine restarts: an fdatasync'ed commit there does
 * not survive a reboot. Read once, before anything is created in the directory.
 */
import { statfs } from 'node:fs/promises';
import { nearestExisting } from './durable-dir.js';
import { nodeFileLayer } from './node-file-layer.js';

const pseudoFilesystemNames: ReadonlyMap<number, string> = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x1cd1, 'devpts'],
  [0x64626720, 'debugfs'],
  [0x73636673, 'securityfs'],
  [0x74726163, 'tracefs'],
  [0xcafe4a11, 'bpf'],
  [0x6165676c, 'pstore'],
  [0x62656570, 'configfs'],
  [0xde5e81e4, 'efivarfs'],
  [0x958458f6, 'hugetlbfs'],
  [0x19800202, 'mqueue'],
]);

const memoryFilesystemNames: ReadonlyMap<number, string> = new Map([
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
]);

export type FilesystemKind =
  | { readonly kind: 'pseudo' | 'memory'; readonly name: string }
  | { readonly kind: 'disk' };

/** What a statfs `type` says of a store kept there; any filesystem not named above counts as a disk. */
export function filesystemKind(type: number): FilesystemKind {
  const magic = type >>> 0; // f_type is a signed long in some libcs: the magic is its low 32 bits
  const pseudo = pseudoFilesystemNames.get(magic);
  if (pseudo !== undefined) return { kind: 'pseudo', name: pseudo };
  const memory = memoryFilesystemNames.get(magic);
  if (memory !== undefined) return { kind: 'memory', name: memory };
  return { kind: 'disk' };
}

/**
 * The filesystem a `mkdir -p dir` would write to (statfs follows symlinks, so a link into a disk
 * counts as the disk), with the existing directory read. Undefined when it cannot be told (no
 * statfs, a directory that may not be read): the work is then tried and its own error says why.
 */
export async function filesystemOfDir(dir: string): Promise<(FilesystemKind & { readonly existing: string }) | undefined> {
  try {
    const existing = await nearestExisting(nodeFileLayer, dir);
    return { ...filesystemKind((await statfs(existing)).type), existing };
  } catch {
    return undefined;
  }
}
