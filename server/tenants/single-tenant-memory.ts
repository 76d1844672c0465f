/**
 * The memory of a process serving one tenant (stdio), through the same machinery as HTTP: a
 * registry with one slot that never closes the store for idleness (it stays open for the
 * connection, as a desktop client expects), so a failed store (a fdatasync failed) is reopened on
 * the first call after its backoff exactly as on HTTP instead of refusing every call until the
 * client restarts the server; the tenant's commits heard across those reopens (TenantCommits), so
 * a change feed made before a failure hears the writes after the reopen; the session's memory
 * leased per call. The store still opens on first use: the 2.x client's `server/discover` probe
 * process never opens it.
 */
import { MemoryError } from '../../storage/errors.js';
import type { TenantMemory } from '../../tools/memory.js';
import type { WithTenant } from '../control/control-runtime.js';
import type { LeasedMemory } from '../mcp/memory-source.js';
import { idleCloseNever, TenantRegistry, type TenantRegistryEvent } from './registry.js';
import { TenantCommits } from './tenant-commits.js';

export interface SingleTenantMemoryOptions {
  readonly dataDir: string;
  readonly tenant: string;
  /** Opens the tenant's memory in `dir` (its own directory, created and checked already). */
  readonly open: (dir: string) => Promise<TenantMemory>;
  /** The failed store's reopen backoff clock (tests pass their own). */
  readonly nowMs?: () => number;
  /** Opens, closes, failures: for logs. Must not throw. */
  readonly observe?: (event: TenantRegistryEvent) => void;
}

export class SingleTenantMemory {
  readonly tenant: string;
  private readonly registry: TenantRegistry<TenantMemory>;
  private readonly commits = new TenantCommits();
  private opened = false;

  constructor(options: SingleTenantMemoryOptions) {
    this.tenant = options.tenant;
    this.registry = new TenantRegistry<TenantMemory>({
      dataDir: options.dataDir,
      open: async (tenant, dir) => {
        const memory = await options.open(dir);
        this.commits.attach(tenant, memory.store);
        this.opened = true;
        return memory;
      },
      openTenantsMax: 1,
      idleCloseMs: idleCloseNever,
      failed: (memory) => memory.store.failureKind,
      ...(options.nowMs !== undefined && { nowMs: options.nowMs }),
      ...(options.observe !== undefined && { observe: options.observe }),
    });
  }

  /** A store was opened at some point: its calls may have left control work (access rows) in it. */
  get everOpened(): boolean {
    return this.opened;
  }

  /** The session's memory: a lease per call, and the tenant's commits across reopens. */
  readonly memory: LeasedMemory = {
    lease: async () => {
      const lease = await this.registry.acquire(this.tenant);
      return { memory: lease.store, release: () => lease.release() };
    },
    onCommit: (listener) => this.commits.listen(this.tenant, listener),
  };

  /** For the access log and the control plane: the one tenant, leased for `fn`. */
  readonly withTenant: WithTenant = async (wanted, fn) => {
    if (wanted !== this.tenant) throw new MemoryError('forbidden', 'this stdio server serves one tenant');
    return this.registry.withTenant(wanted, fn);
  };

  /** Lets admitted work finish and closes the store (its closing snapshot). */
  close(): Promise<void> {
    return this.registry.close();
  }
}
