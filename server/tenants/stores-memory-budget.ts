/**
 * The default memory budget of the open tenant stores (registry.ts, IOBOXX_STORES_MEMORY_BYTES_MAX
 * unset): a share of the memory this process may use, which is the machine's (os.totalmem()) or,
 * when lower, the memory limit of the container's cgroup (v2 `memory.max`, v1
 * `memory.limit_in_bytes`; "max" or a page-rounded 2^63 mean none).
 */
import { readFileSync } from 'node:fs';
import * as os from 'node:os';

/**
 * The stores' estimated memory may take half: the rest is the server's own heap and sessions,
 * embedded PGlite (~500 MB idle), snapshot and replay buffers (a load reads a whole snapshot file)
 * and the page cache the commitlog's reads want.
 */
export const storesMemoryShareOfMachine = 0.5;

/** Where a container's memory limit is read, cgroup v2 first. */
export const cgroupMemoryLimitFiles = ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes'] as const;

/** The memory limit a cgroup file states, or undefined when it states none (or cannot be read). */
export function cgroupMemoryLimitBytes(readText: (file: string) => string = (file) => readFileSync(file, 'utf8')): number | undefined {
  for (const file of cgroupMemoryLimitFiles) {
    let text: string;
    try {
      text = readText(file).trim();
    } catch {
      continue;
    }
    const bytes = Number(text);
    // "max" (v2) and v1's "no limit" (2^63 rounded down to a page) are no bound.
    return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
  }
  return undefined;
}

/** storesMemoryShareOfMachine of the smaller of the machine's memory and the cgroup's limit. */
export function storesMemoryBytesMaxOfMachine(totalBytes: number = os.totalmem(), cgroupLimitBytes: number | undefined = cgroupMemoryLimitBytes()): number {
  const usable = cgroupLimitBytes === undefined ? totalBytes : Math.min(totalBytes, cgroupLimitBytes);
  return Math.floor(usable * storesMemoryShareOfMachine);
}
