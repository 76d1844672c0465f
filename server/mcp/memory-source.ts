/**
 * Where a server instance gets its tenant's memory: given (HTTP: the route already holds a
 * lease), or opened on first use (stdio: the 2.x client's disposable `server/discover` probe
 * process never needs the store, so it must not pay to open and recover it).
 */
import type { TenantMemory } from '../../tools/memory.js';

export type MemorySource = TenantMemory | (() => Promise<TenantMemory>);

/**
 * The memory, resolved at most once per instance; `onOpened` runs once, before any caller
 * sees it (so a change feed is listening before the first write of this instance).
 */
export function memoryOnce(source: MemorySource, onOpened: (memory: TenantMemory) => void): () => Promise<TenantMemory> {
  if (typeof source !== 'function') {
    onOpened(source);
    const ready = Promise.resolve(source);
    return () => ready;
  }
  let opening: Promise<TenantMemory> | undefined;
  return () =>
    (opening ??= source().then((memory) => {
      onOpened(memory);
      return memory;
    }));
}
