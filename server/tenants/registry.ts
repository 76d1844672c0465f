/**
 * The open tenant stores. A store is opened on first use (concurrent first requests share one
 * open), stays open while used, is closed after `idleCloseMs` without work (never with
 * `idleCloseNever`), and at most
 * `openTenantsMax` stores hold a slot (opening, open or closing) at any moment. When a new
 * tenant needs a slot and none is free, the least recently used open store is closed first:
 * an idle one if there is any, else a busy one once its in-flight work has finished (work
 * already admitted always completes). A request for a store chosen for eviction but still
 * draining keeps it open when another store can be chosen instead; else (and for a store whose
 * close has begun) the request waits for the close and reopens it, after the waiting tenants. A failed store (it refuses writes until
 * reopened) is never handed out: a request closes and reopens it once it is idle, at most once
 * per backoff (failed-store-reopen.ts); meanwhile requests are refused `unavailable`.
 *
 * A store opened is not evicted for a waiting tenant before it has been open
 * `residencyOpenTimesMin` times as long as its open took: without that, two tenants contending
 * for one slot (a subscriber that reconnects at once, a sequential writer) evicted each other
 * after every call, and the slot spent its time opening stores. With it, at most a fifth of a
 * contended slot's time goes to opens, each tenant getting runs of work in turn.
 *
 * A memory budget (`storesMemoryBytesMax`, over `bytesOf(store)`, the store's estimated memory)
 * bounds the open stores too. A store's size is known once it is open, so a new open is admitted
 * while the stores held are below the budget, and once open, idle stores are closed least
 * recently used first until the rest fit again (an idle store that grew is measured when its last
 * lease goes). When the budget is full an open waits like a slot wait, the least recently used
 * stores are closed for it (busy ones once their work is done), and it fails `busy` after
 * `slotWaitMs`. A store alone is never refused or closed for the budget, however big.
 *
 * Generic over the store so it holds no storage knowledge: T is anything with `close()`.
 */
import { MemoryError, type StoreFailureKind } from '../../storage/errors.js';
import { FailedStoreReopens } from './failed-store-reopen.js';
import { storeOpenRefusal } from './open-refusal.js';
import { tenantDir } from './tenant-dir.js';
import { parseTenantId } from './tenant-id.js';
import { openTenantStore } from './tenant-open.js';

export const openTenantsMaxDefault = 64;
export const idleCloseMsDefault = 5 * 60_000;
/** No idle close: the store stays open until evicted, failed or shut down (a process serving one tenant). */
export const idleCloseNever = Number.POSITIVE_INFINITY;
/** Requests queued for a slot; past this the registry answers `busy` instead of queueing. */
export const slotWaitersMax = 10_000;
/**
 * How long a tenant waits for a slot before the request fails `busy`. Slots are held by work
 * in flight, and a lease may be long (a subscription stream): without this a request could wait forever.
 */
export const slotWaitMsDefault = 30_000;
/** The longest slot wait the configuration accepts (IOBOXX_TENANT_SLOT_WAIT_MS): a client waits no longer for an answer. */
export const slotWaitMsMax = 10 * 60_000;
/** A store is open at least this many times its open's duration before a waiting tenant may evict it. */
export const residencyOpenTimesMin = 4;
/** ...but no longer than this: a waiting tenant's wait stays bounded whatever an open took (a big store's seconds). */
export const residencyMsMax = 5_000;
/** No budget: the stores' memory is not bounded (bytesOf unused). */
export const storesMemoryBytesUnbounded = Number.POSITIVE_INFINITY;

export interface Closable {
  close(): Promise<void>;
}

export type TenantRegistryEvent =
  | { readonly kind: 'opening' | 'opened' | 'closed'; readonly tenant: string }
  | { readonly kind: 'closing'; readonly tenant: string; readonly why: CloseReason }
  | { readonly kind: 'open_failed'; readonly tenant: string; readonly error: unknown }
  | { readonly kind: 'close_failed'; readonly tenant: string; readonly error: unknown }
  | { readonly kind: 'waiting_for_slot'; readonly tenant: string }
  | { readonly kind: 'slot_wait_timed_out'; readonly tenant: string };

/** Why a store is closed: `failed`, to reopen it (a failed store refuses writes until reopened). */
export type CloseReason = 'idle' | 'evicted' | 'shutdown' | 'failed';

export interface TenantRegistryOptions<T extends Closable> {
  readonly dataDir: string;
  /** Opens the tenant's store in `dir` (its own directory, created and checked already). */
  readonly open: (tenant: string, dir: string) => Promise<T>;
  readonly openTenantsMax?: number;
  readonly idleCloseMs?: number;
  readonly slotWaitMs?: number;
  /** Bound on the summed bytesOf of the stores held (opening stores count 0 until open); default unbounded. */
  readonly storesMemoryBytesMax?: number;
  /** A store's estimated memory, in bytes; read when it opens and when its last lease is released. Must not throw. */
  readonly bytesOf?: (store: T) => number;
  /** Whether the store failed and refuses writes until reopened (default: never). */
  /** Whether the store failed (it refuses writes until reopened), or why: its callers are told meanwhile. */
  readonly failed?: (store: T) => boolean | StoreFailureKind | undefined;
  /** The clock of the failed stores' reopen backoff (tests pass their own). */
  readonly nowMs?: () => number;
  /** Opens, closes, failures: for logs and metrics. Must not throw. */
  readonly observe?: (event: TenantRegistryEvent) => void;
}

/** A hold on an open store: it will not be closed until released. Release exactly once. */
export interface TenantLease<T> {
  readonly tenant: string;
  readonly store: T;
  release(): void;
}

export interface TenantRegistryStats {
  readonly slotsUsed: number;
  readonly opening: number;
  readonly open: number;
  readonly closing: number;
  readonly waitingForSlot: number;
  /** Summed bytesOf of the stores open or closing, as last measured. */
  readonly storesMemoryBytes: number;
}

type EntryState = 'opening' | 'open' | 'closing';

interface Entry<T> {
  readonly tenant: string;
  state: EntryState;
  ready: Promise<T>;
  store: T | undefined;
  inFlight: number;
  lastUseSeq: number;
  /** bytesOf(store) when last measured (0 until open); part of storesMemoryBytes until the store is closed. */
  bytes: number;
  /** In its residency: a waiting tenant may not evict it yet (residencyTimer ends it). */
  resident: boolean;
  residencyTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
  closeWhy: CloseReason | undefined;
  /** store.close() has been called: the store can no longer be used. */
  closeStarted: boolean;
  closed: Promise<void> | undefined;
  resolveClosed: (() => void) | undefined;
}

interface SlotWaiter {
  readonly grant: () => void;
  readonly refuse: (error: Error) => void;
}

export class TenantRegistry<T extends Closable> {
  readonly openTenantsMax: number;
  readonly idleCloseMs: number;
  readonly slotWaitMs: number;
  readonly storesMemoryBytesMax: number;
  private readonly bytesOf: (store: T) => number;
  private readonly entries = new Map<string, Entry<T>>();
  private readonly slotWaiters: SlotWaiter[] = [];
  private slotsUsed = 0;
  /** Summed `bytes` of the entries holding a store (open or closing). */
  private storesMemoryBytes = 0;
  private useSeq = 0;
  private shutDown = false;
  private readonly reopens: FailedStoreReopens;

  constructor(private readonly options: TenantRegistryOptions<T>) {
    this.openTenantsMax = options.openTenantsMax ?? openTenantsMaxDefault;
    this.idleCloseMs = options.idleCloseMs ?? idleCloseMsDefault;
    this.slotWaitMs = options.slotWaitMs ?? slotWaitMsDefault;
    this.storesMemoryBytesMax = options.storesMemoryBytesMax ?? storesMemoryBytesUnbounded;
    this.bytesOf = options.bytesOf ?? (() => 0);
    if (!(this.storesMemoryBytesMax > 0)) {
      throw new MemoryError('invalid_argument', `storesMemoryBytesMax must be positive, got ${this.storesMemoryBytesMax}`);
    }
    this.reopens = new FailedStoreReopens(options.nowMs);
    if (!Number.isInteger(this.openTenantsMax) || this.openTenantsMax < 1) {
      throw new MemoryError('invalid_argument', `openTenantsMax must be a positive integer, got ${this.openTenantsMax}`);
    }
    for (const [name, value] of [['idleCloseMs', this.idleCloseMs], ['slotWaitMs', this.slotWaitMs]] as const) {
      if (!(Number.isFinite(value) && value >= 0) && !(name === 'idleCloseMs' && value === idleCloseNever)) {
        throw new MemoryError('invalid_argument', `${name} must be a non-negative number${name === 'idleCloseMs' ? ' or idleCloseNever' : ''}, got ${value}`);
      }
    }
  }

  /** Runs `fn` with the tenant's store, opening it if needed; the store stays open until fn settles. */
  async withTenant<R>(tenant: string, fn: (store: T) => Promise<R>): Promise<R> {
    const lease = await this.acquire(tenant);
    try {
      return await fn(lease.store);
    } finally {
      lease.release();
    }
  }

  /** For work that outlives one call (a subscription stream): hold the store until released. */
  async acquire(tenant: string): Promise<TenantLease<T>> {
    const id = parseTenantId(tenant);
    for (;;) {
      if (this.shutDown) throw new MemoryError('unavailable', 'the tenant registry is shut down');
      const existing = this.entries.get(id);
      // A store chosen for eviction and still draining is kept for this request only if another
      // store can go instead; else the waiting tenant would wait as long as this one stays busy.
      if (existing?.state === 'closing' && (existing.closeStarted || !this.canEvictInstead(existing))) {
        await existing.closed;
        continue;
      }
      const failed = existing?.state === 'open' ? this.options.failed?.(existing.store as T) : undefined;
      if (existing?.state === 'open' && failed) {
        const refusal = this.reopens.reopenRefusal(id, existing.inFlight > 0, typeof failed === 'string' ? failed : undefined);
        if (refusal !== undefined) throw refusal;
        this.startClose(existing, 'failed'); // idle: closed now, then reopened below
        continue;
      }
      if (existing === undefined) {
        const refusal = this.reopens.openRefusal(id);
        if (refusal !== undefined) throw refusal;
      } else if (existing.state === 'open') {
        this.reopens.sound(id);
      }
      const entry = existing ?? this.startOpen(id);
      const rescued = entry.state === 'closing';
      if (rescued) {
        // Chosen for eviction but still draining: the store is open, so keep it and serve
        // this request; a waiting tenant gets another victim below.
        entry.state = 'open';
        entry.closeWhy = undefined;
        // Requests that found it draining when no other store could go wait for this close,
        // which no longer comes: wake them, to be served by the store kept open.
        entry.resolveClosed?.();
        entry.closed = undefined;
        entry.resolveClosed = undefined;
      }
      entry.inFlight += 1;
      entry.lastUseSeq = ++this.useSeq;
      clearTimeout(entry.idleTimer);
      entry.idleTimer = undefined;
      if (rescued) this.evictForWaiters();
      let store: T;
      try {
        store = await entry.ready;
      } catch (error) {
        this.release(entry);
        throw error;
      }
      let released = false;
      return {
        tenant: id,
        store,
        release: () => {
          if (released) return;
          released = true;
          this.release(entry);
        },
      };
    }
  }

  /** The stores open now (not opening or closing). */
  openStores(): T[] {
    const open: T[] = [];
    for (const entry of this.entries.values()) if (entry.state === 'open' && entry.store !== undefined) open.push(entry.store);
    return open;
  }

  stats(): TenantRegistryStats {
    let opening = 0;
    let open = 0;
    let closing = 0;
    for (const entry of this.entries.values()) {
      if (entry.state === 'opening') opening += 1;
      else if (entry.state === 'open') open += 1;
      else closing += 1;
    }
    return { slotsUsed: this.slotsUsed, opening, open, closing, waitingForSlot: this.slotWaiters.length, storesMemoryBytes: this.storesMemoryBytes };
  }

  /** Refuses new work, lets admitted work finish, closes every store. */
  async close(): Promise<void> {
    this.shutDown = true;
    for (const waiter of this.slotWaiters.splice(0)) {
      waiter.refuse(new MemoryError('unavailable', 'the tenant registry is shutting down'));
    }
    const closing = [...this.entries.values()].map(async (entry) => {
      await entry.ready.catch(() => undefined);
      if (entry.state === 'open') this.startClose(entry, 'shutdown');
      await entry.closed;
    });
    await Promise.all(closing);
  }

  private startOpen(tenant: string): Entry<T> {
    const entry: Entry<T> = {
      tenant,
      state: 'opening',
      ready: undefined as unknown as Promise<T>, // set just below: openEntry needs the entry first
      store: undefined,
      inFlight: 0,
      lastUseSeq: 0,
      bytes: 0,
      resident: false,
      residencyTimer: undefined,
      idleTimer: undefined,
      closeWhy: undefined,
      closeStarted: false,
      closed: undefined,
      resolveClosed: undefined,
    };
    this.entries.set(tenant, entry);
    entry.ready = this.openEntry(entry);
    // Waiters see the failure through `ready`; this handler only keeps it from being unhandled.
    entry.ready.catch(() => undefined);
    return entry;
  }

  private async openEntry(entry: Entry<T>): Promise<T> {
    this.observe({ kind: 'opening', tenant: entry.tenant });
    try {
      await this.reserveSlot(entry.tenant);
    } catch (error) {
      this.entries.delete(entry.tenant);
      throw error;
    }
    let dir = this.options.dataDir; // until the tenant's own is known
    try {
      dir = tenantDir(this.options.dataDir, entry.tenant);
      const openStartMs = performance.now();
      const store = await openTenantStore(this.options.dataDir, entry.tenant, (checked) => this.options.open(entry.tenant, checked));
      entry.store = store;
      entry.state = 'open';
      this.startResidency(entry, Math.min((performance.now() - openStartMs) * residencyOpenTimesMin, residencyMsMax));
      this.measure(entry);
      this.observe({ kind: 'opened', tenant: entry.tenant });
      // A new candidate for eviction may unblock a waiting tenant.
      this.evictForWaiters();
      this.evictOverBudget();
      if (entry.inFlight === 0) this.armIdleTimer(entry);
      return store;
    } catch (error) {
      this.entries.delete(entry.tenant);
      this.releaseSlot();
      this.reopens.openFailed(entry.tenant);
      this.observe({ kind: 'open_failed', tenant: entry.tenant, error });
      throw storeOpenRefusal(error, dir);
    }
  }

  /** A new store may open now: a slot is free and the stores held leave room in the budget (or none is held). */
  private get admitting(): boolean {
    return this.slotsUsed < this.openTenantsMax && (this.storesMemoryBytes < this.storesMemoryBytesMax || !this.anyStoreHeld());
  }

  private anyStoreHeld(): boolean {
    for (const entry of this.entries.values()) if (entry.store !== undefined) return true;
    return false;
  }

  private reserveSlot(tenant: string): Promise<void> {
    if (this.admitting && this.slotWaiters.length === 0) {
      this.slotsUsed += 1;
      return Promise.resolve();
    }
    if (this.slotWaiters.length >= slotWaitersMax) {
      return Promise.reject(new MemoryError('busy', `more than ${slotWaitersMax} tenants are waiting to open`, 'retry later'));
    }
    return new Promise<void>((grant, refuse) => {
      const timer = setTimeout(() => {
        const index = this.slotWaiters.indexOf(waiter);
        if (index === -1) return;
        this.slotWaiters.splice(index, 1);
        this.observe({ kind: 'slot_wait_timed_out', tenant });
        refuse(this.slotsUsed < this.openTenantsMax
          ? new MemoryError(
            'busy',
            `no room freed within ${this.slotWaitMs} ms in the open stores' memory budget (${this.storesMemoryBytes} of ${this.storesMemoryBytesMax} bytes held by stores in use)`,
            'retry later, or raise IOBOXX_STORES_MEMORY_BYTES_MAX',
          )
          : new MemoryError(
            'busy',
            `no tenant store slot freed within ${this.slotWaitMs} ms (all ${this.openTenantsMax} are in use)`,
            'retry later, or raise IOBOXX_MAX_OPEN_TENANTS',
          ));
      }, this.slotWaitMs);
      timer.unref();
      const waiter: SlotWaiter = {
        grant: () => {
          clearTimeout(timer);
          grant();
        },
        refuse: (error) => {
          clearTimeout(timer);
          refuse(error);
        },
      };
      this.slotWaiters.push(waiter);
      this.observe({ kind: 'waiting_for_slot', tenant });
      this.evictForWaiters();
    });
  }

  /** A freed slot (or freed memory) goes to the waiters first, in order, while they may open. */
  private releaseSlot(): void {
    this.slotsUsed -= 1;
    while (this.slotWaiters.length > 0 && this.admitting) {
      this.slotsUsed += 1;
      this.slotWaiters.shift()!.grant();
    }
  }

  /**
   * Start closing, least recently used first, as many stores as waiters still need slots for,
   * and then as many as it takes to bring the open ones below the memory budget.
   */
  private evictForWaiters(): void {
    if (this.slotWaiters.length === 0) return;
    let closing = 0;
    let openBytes = this.storesMemoryBytes;
    for (const entry of this.entries.values()) {
      if (entry.state !== 'closing') continue;
      closing += 1;
      openBytes -= entry.bytes;
    }
    const slotsShort = this.slotWaiters.length - (this.openTenantsMax - this.slotsUsed);
    while (closing < slotsShort || openBytes >= this.storesMemoryBytesMax) {
      // None past its residency: the first residency to end runs this again.
      const victim = this.leastRecentlyUsedOpen(true, true);
      if (victim === undefined) return;
      this.startClose(victim, 'evicted');
      closing += 1;
      openBytes -= victim.bytes;
    }
  }

  /** Over the memory budget with no one waiting (a store opened or grew): close idle stores, least recently used first, while more than one is held. */
  private evictOverBudget(): void {
    let openBytes = this.storesMemoryBytes;
    let open = 0;
    for (const entry of this.entries.values()) {
      if (entry.state === 'closing') openBytes -= entry.bytes;
      else if (entry.state === 'open') open += 1;
    }
    while (openBytes > this.storesMemoryBytesMax && open > 1) {
      const victim = this.leastRecentlyUsedOpen(false);
      if (victim === undefined) return;
      this.startClose(victim, 'evicted');
      open -= 1;
      openBytes -= victim.bytes;
    }
  }

  /** Whether an open store other than `draining` may be evicted for the waiters now. */
  private canEvictInstead(draining: Entry<T>): boolean {
    for (const entry of this.entries.values()) {
      if (entry !== draining && entry.state === 'open' && !entry.resident) return true;
    }
    return false;
  }

  private startResidency(entry: Entry<T>, residencyMs: number): void {
    entry.resident = true;
    entry.residencyTimer = setTimeout(() => {
      entry.residencyTimer = undefined;
      entry.resident = false;
      if (entry.state === 'open') this.evictForWaiters();
    }, residencyMs);
    // The waiters' own timers bound their wait; this one must not keep the process alive.
    entry.residencyTimer.unref();
  }

  /**
   * The least recently used open store: an idle one if any, else (when `busyToo`) a busy one.
   * For a waiting tenant (`forWaiter`), only stores past their residency.
   */
  private leastRecentlyUsedOpen(busyToo: boolean, forWaiter = false): Entry<T> | undefined {
    let idle: Entry<T> | undefined;
    let busy: Entry<T> | undefined;
    for (const entry of this.entries.values()) {
      if (entry.state !== 'open') continue;
      if (forWaiter && entry.resident) continue;
      if (entry.inFlight === 0) {
        if (idle === undefined || entry.lastUseSeq < idle.lastUseSeq) idle = entry;
      } else if (busy === undefined || entry.lastUseSeq < busy.lastUseSeq) {
        busy = entry;
      }
    }
    return idle ?? (busyToo ? busy : undefined);
  }

  /** Read the store's bytes again (it opened, or its last lease went: it may have grown). */
  private measure(entry: Entry<T>): void {
    const bytes = this.bytesOf(entry.store as T);
    this.storesMemoryBytes += bytes - entry.bytes;
    entry.bytes = bytes;
  }

  private startClose(entry: Entry<T>, why: CloseReason): void {
    if (entry.state !== 'open') return;
    entry.state = 'closing';
    entry.closeWhy = why;
    clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
    clearTimeout(entry.residencyTimer);
    entry.residencyTimer = undefined;
    entry.closed = new Promise<void>((resolve) => {
      entry.resolveClosed = resolve;
    });
    this.observe({ kind: 'closing', tenant: entry.tenant, why });
    // With work in flight, release() finishes the close when the last piece is done.
    if (entry.inFlight === 0) this.finishClose(entry);
  }

  private finishClose(entry: Entry<T>): void {
    // Once only: the observer of `closing` may release the last lease itself (the server ends an
    // evicted tenant's subscription streams there), reaching here before startClose does.
    if (entry.closeStarted) return;
    entry.closeStarted = true;
    const resolveClosed = entry.resolveClosed;
    void (async () => {
      try {
        await (entry.store as T).close();
        this.observe({ kind: 'closed', tenant: entry.tenant });
      } catch (error) {
        // The store is unusable either way: forget it, so the next request opens it afresh.
        this.observe({ kind: 'close_failed', tenant: entry.tenant, error });
      } finally {
        if (this.entries.get(entry.tenant) === entry) this.entries.delete(entry.tenant);
        this.storesMemoryBytes -= entry.bytes;
        entry.bytes = 0;
        this.releaseSlot();
        resolveClosed?.();
      }
    })();
  }

  private release(entry: Entry<T>): void {
    entry.inFlight -= 1;
    entry.lastUseSeq = ++this.useSeq;
    if (entry.inFlight > 0) return;
    if (entry.state === 'closing' && !entry.closeStarted) {
      this.finishClose(entry);
    } else if (entry.state === 'open') {
      this.armIdleTimer(entry);
      if (this.storesMemoryBytesMax !== storesMemoryBytesUnbounded) {
        this.measure(entry);
        this.evictOverBudget();
      }
    }
  }

  private armIdleTimer(entry: Entry<T>): void {
    clearTimeout(entry.idleTimer);
    if (this.idleCloseMs === idleCloseNever) return;
    entry.idleTimer = setTimeout(() => {
      entry.idleTimer = undefined;
      if (entry.state === 'open' && entry.inFlight === 0) this.startClose(entry, 'idle');
    }, this.idleCloseMs);
    // An idle store must not keep the process alive.
    entry.idleTimer.unref();
  }

  private observe(event: TenantRegistryEvent): void {
    this.options.observe?.(event);
  }
}
