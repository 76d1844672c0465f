/** filesystemKind and filesystemOfDir (storage/io/filesystem-kind.ts): which filesystems cannot keep a store, and which keep one only until a reboot. */
import { mkdtemp, rm } from 'node:fs/promises';
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { nearestExisting } from '../../storage/io/durable-dir.js';
import { filesystemKind, filesystemOfDir } from '../../storage/io/filesystem-kind.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'ioboxx-filesystem-kind-'));
});
afterEach(() => rm(root, { recursive: true, force: true }));

test('the kernel\'s pseudo filesystems are named and refused as a place for a store', () => {
  const pseudo: Array<[number, string]> = [
    [0x9fa0, 'proc'], [0x62656572, 'sysfs'], [0x27e0eb, 'cgroup'], [0x63677270, 'cgroup2'], [0x1cd1, 'devpts'],
    [0x64626720, 'debugfs'], [0x73636673, 'securityfs'], [0x74726163, 'tracefs'], [0xcafe4a11, 'bpf'],
    [0x6165676c, 'pstore'], [0x62656570, 'configfs'], [0xde5e81e4, 'efivarfs'], [0x958458f6, 'hugetlbfs'], [0x19800202, 'mqueue'],
  ];
  for (const [type, name] of pseudo) expect(filesystemKind(type), name).toEqual({ kind: 'pseudo', name });
});

test('tmpfs and ramfs are memory: served, but not durable across a reboot', () => {
  expect(filesystemKind(0x01021994)).toEqual({ kind: 'memory', name: 'tmpfs' });
  expect(filesystemKind(0x858458f6)).toEqual({ kind: 'memory', name: 'ramfs' });
});

test('a magic read as a signed 32-bit number is the same filesystem', () => {
  expect(filesystemKind(0xcafe4a11 | 0)).toEqual({ kind: 'pseudo', name: 'bpf' });
  expect(filesystemKind(0x858458f6 | 0)).toEqual({ kind: 'memory', name: 'ramfs' });
});

test('ext4, xfs, btrfs and any filesystem not named count as a disk', () => {
  for (const type of [0xef53, 0x58465342, 0x9123683e, 0x6969, 0]) expect(filesystemKind(type)).toEqual({ kind: 'disk' });
});

test('a missing directory is judged by its nearest existing ancestor', async () => {
  const missing = path.join(root, 'a', 'b', 'c');
  expect(await nearestExisting(nodeFileLayer, missing)).toBe(root);
  expect(await nearestExisting(nodeFileLayer, root)).toBe(root);
  expect(await filesystemOfDir(missing)).toEqual({ ...filesystemKind(statfsSync(root).type), existing: root });
});

test('a data directory under /proc is on proc', async () => {
  expect(await filesystemOfDir('/proc/ioboxx-no-such/data')).toEqual({ kind: 'pseudo', name: 'proc', existing: '/proc' });
});
