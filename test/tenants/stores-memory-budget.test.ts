/** The default memory budget of the open stores: half of the machine's memory or of the cgroup's limit, whichever is lower. */
import { describe, expect, test } from 'vitest';
import { cgroupMemoryLimitBytes, storesMemoryBytesMaxOfMachine } from '../../server/tenants/stores-memory-budget.js';

const gib = 1024 ** 3;
const files = (contents: Record<string, string>) => (file: string): string => {
  const text = contents[file];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
  return text;
};

describe('stores memory budget', () => {
  test('a cgroup v2 or v1 limit is read; "max", v1\'s unlimited and no file are no limit', () => {
    expect(cgroupMemoryLimitBytes(files({ '/sys/fs/cgroup/memory.max': `${2 * gib}\n` }))).toBe(2 * gib);
    expect(cgroupMemoryLimitBytes(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': `${3 * gib}\n` }))).toBe(3 * gib);
    expect(cgroupMemoryLimitBytes(files({ '/sys/fs/cgroup/memory.max': 'max\n' }))).toBeUndefined();
    expect(cgroupMemoryLimitBytes(files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n' }))).toBeUndefined();
    expect(cgroupMemoryLimitBytes(files({}))).toBeUndefined();
  });

  test('half of the lower of the machine and the cgroup', () => {
    expect(storesMemoryBytesMaxOfMachine(16 * gib, undefined)).toBe(8 * gib);
    expect(storesMemoryBytesMaxOfMachine(16 * gib, 4 * gib)).toBe(2 * gib);
    expect(storesMemoryBytesMaxOfMachine(4 * gib, 16 * gib)).toBe(2 * gib);
  });
});
