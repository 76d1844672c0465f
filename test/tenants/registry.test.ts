/**
 * The tenant registry with a fake store (the registry is generic over it) in a real temporary
 * data directory. Orderings are asserted from the registry's own events, never from sleeps.
 */
import { lstat, mkdtemp, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { segmentFileName } from '../../storage/log/segment.js';
import { failedStoreReopenDelayMsMax, failedStoreReopenDelayMsMin, StoreReopenPending } from '../../server/tenants/failed-store-reopen.js';
import { idleCloseNever, TenantRegistry, type TenantRegistryEvent } from '../../server/tenants/registry.js';
import { tenantDir } from '../../server/tenants/tenant-dir.js';

class FakeStore {
  closed = false;
  /** As a store whose fdatasync failed: it refuses writes until reopened. */
  failed = false;
  constructor(
    readonly tenant: string,
    readonly dir: string,
    private readonly slowClose: ((tenant: string) => Promise<void>) | undefined,
    private readonly onClose: (store: FakeStore) => void,
  ) {}
  async close(): Promise<void> {
    if (this.closed) throw new Error('closed twice');
    this.closed = true;
    await this.slowClose?.(this.tenant);
    this.onClose(this);
  }
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-registry-'));
});
afterEach(async () => {
  vi.useRealTimers();
  await rm(dataDir, { recursive: true, force: true });
});

/** A registry of fake stores, with a log of what happened and a high-water mark of open stores. */
function harness(
  options: {
    openTenantsMax?: number;
    idleCloseMs?: number;
    open?: (tenant: string) => Promise<void>;
    close?: (tenant: string) => Promise<void>;
    /** Called with each event, as the server's observer is (it closes an evicted tenant's idle sessions). */
    onEvent?: (event: TenantRegistryEvent) => void;
    /** A memory budget over the stores, and each tenant's store size in bytes. */
    storesMemoryBytesMax?: number;
    bytesOf?: (tenant: string) => number;
    /** The failed stores' reopen backoff clock. */
    nowMs?: () => number;
  } = {},
) {
  const log: string[] = [];
  const waiters: { match: (event: TenantRegistryEvent) => boolean; resolve: () => void }[] = [];
  let openNow = 0;
  let openHighWater = 0;
  const opens = new Map<string, number>();
  const registry = new TenantRegistry<FakeStore>({
    dataDir,
    openTenantsMax: options.openTenantsMax ?? 4,
    idleCloseMs: options.idleCloseMs ?? 60_000,
    ...(options.storesMemoryBytesMax !== undefined && { storesMemoryBytesMax: options.storesMemoryBytesMax }),
    ...(options.bytesOf !== undefined && { bytesOf: (store: FakeStore) => options.bytesOf!(store.tenant) }),
    failed: (store) => store.failed,
    ...(options.nowMs !== undefined && { nowMs: options.nowMs }),
    async open(tenant, dir) {
      await options.open?.(tenant);
      // Like a real store, the fake leaves a log segment in its directory: a reopen finds a store there.
      await mkdir(join(dir, 'log'), { recursive: true });
      await writeFile(join(dir, 'log', segmentFileName(0)), '');
      opens.set(tenant, (opens.get(tenant) ?? 0) + 1);
      openNow += 1;
      openHighWater = Math.max(openHighWater, openNow);
      log.push(`open ${tenant}`);
      return new FakeStore(tenant, dir, options.close, () => {
        openNow -= 1;
        log.push(`close ${tenant}`);
      });
    },
    observe(event) {
      options.onEvent?.(event);
      for (const waiter of [...waiters]) {
        if (waiter.match(event)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve();
        }
      }
    },
  });
  const event = (kind: TenantRegistryEvent['kind'], tenant: string) =>
    new Promise<void>((resolve) => waiters.push({ match: (e) => e.kind === kind && e.tenant === tenant, resolve }));
  return { registry, log, opens, event, highWater: () => openHighWater };
}

const badTenantIds = ['../x', '%2e%2e', '..', 'A', 'Acme', 'a'.repeat(200), '租户', 'tenänt', 'a/b', 'a.b', '', ' acme', '-acme'];

describe('tenant registry', () => {
  test('concurrent first requests for a tenant open its store once', async () => {
    const gate = deferred();
    const { registry, opens } = harness({ open: () => gate.promise });
    const calls = Array.from({ length: 50 }, () => registry.withTenant('acme', async (store) => store));
    gate.resolve();
    const stores = await Promise.all(calls);
    expect(opens.get('acme')).toBe(1);
    expect(new Set(stores).size).toBe(1);
  });

  test("each tenant's store opens in its own directory under the data dir", async () => {
    const { registry } = harness();
    const acme = await registry.withTenant('acme', async (store) => store);
    const globex = await registry.withTenant('globex', async (store) => store);
    expect(acme.dir).toBe(join(dataDir, 'tenants', 'acme'));
    expect(globex.dir).toBe(join(dataDir, 'tenants', 'globex'));
    expect((await readdir(join(dataDir, 'tenants'))).sort()).toEqual(['acme', 'globex']);
    await registry.close();
  });

  test('malformed tenant ids are refused before any path is built or store opened', async () => {
    const { registry, opens } = harness();
    for (const tenant of badTenantIds) {
      await expect(registry.withTenant(tenant, async () => 'ran'), JSON.stringify(tenant)).rejects.toMatchObject({ code: 'invalid_argument' });
      expect(() => tenantDir(dataDir, tenant), JSON.stringify(tenant)).toThrow(MemoryError);
    }
    expect(opens.size).toBe(0);
    expect(await readdir(dataDir)).toEqual([]);
  });

  test('a tenant directory replaced by a symlink is refused', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'ioboxx-outside-'));
    await mkdir(join(dataDir, 'tenants'), { recursive: true });
    await symlink(outside, join(dataDir, 'tenants', 'evil'));
    const { registry, opens } = harness();
    await expect(registry.withTenant('evil', async () => 'ran')).rejects.toMatchObject({ code: 'forbidden' });
    expect(opens.size).toBe(0);
    await rm(outside, { recursive: true, force: true });
  });

  test('a file or a dangling symlink in place of a tenant directory is refused, and nothing is created through it', async () => {
    await mkdir(join(dataDir, 'tenants'), { recursive: true });
    await writeFile(join(dataDir, 'tenants', 'plain'), 'not a directory');
    const target = join(dataDir, 'planted-target');
    await symlink(target, join(dataDir, 'tenants', 'dangling'));
    const { registry, opens } = harness();
    for (const tenant of ['plain', 'dangling']) {
      await expect(registry.withTenant(tenant, async () => 'ran'), tenant).rejects.toMatchObject({ code: 'forbidden' });
    }
    expect(opens.size).toBe(0);
    await expect(lstat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test('a tenant directory is created on first use and reused as it is after', async () => {
    const { registry } = harness();
    await registry.withTenant('fresh', async () => undefined);
    const created = await lstat(tenantDir(dataDir, 'fresh'));
    expect(created.isDirectory()).toBe(true);
    await registry.close();
    const again = harness();
    await again.registry.withTenant('fresh', async () => undefined);
    expect((await lstat(tenantDir(dataDir, 'fresh'))).ino).toBe(created.ino);
  });

  test('at most openTenantsMax stores are open; the least recently used is closed first', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { registry, log, highWater } = harness({ openTenantsMax: 2 });
    await registry.withTenant('aa', async () => undefined);
    await registry.withTenant('bb', async () => undefined);
    await vi.advanceTimersByTimeAsync(1_000); // both past their residency (a few times their open)
    await registry.withTenant('aa', async () => undefined); // bb is now the least recently used
    await registry.withTenant('cc', async () => undefined);
    expect(log).toEqual(['open aa', 'open bb', 'close bb', 'open cc']);
    expect(highWater()).toBe(2);
    expect(registry.stats()).toMatchObject({ slotsUsed: 2, open: 2 });
    // What the metrics probes read: the stores open now, not the closed one.
    expect(registry.openStores().map((store) => store.tenant).sort()).toEqual(['aa', 'cc']);
  });

  test('a store busy with work is closed only after that work finishes', async () => {
    const { registry, log, event } = harness({ openTenantsMax: 1 });
    const work = deferred();
    const started = deferred();
    const running = registry.withTenant('aa', async (store) => {
      log.push('aa work starts');
      started.resolve();
      await work.promise;
      log.push('aa work ends');
      return store.closed;
    });
    await started.promise;
    const evicting = event('closing', 'aa');
    const b = registry.withTenant('bb', async (store) => store.tenant);
    await evicting; // b wants a's slot; a is closing but still has work in flight
    expect(log).toEqual(['open aa', 'aa work starts']);
    work.resolve();
    expect(await running).toBe(false); // the store was still open when the work ended
    expect(await b).toBe('bb');
    expect(log).toEqual(['open aa', 'aa work starts', 'aa work ends', 'close aa', 'open bb']);
  });

  test('a request for a store chosen for eviction but still draining is served by that store when another can go instead', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { registry, log, opens, event } = harness({ openTenantsMax: 2 });
    const lease = await registry.acquire('aa');
    const other = await registry.acquire('cc');
    await vi.advanceTimersByTimeAsync(1_000); // both past their residency (a few times their open)
    const evicting = event('closing', 'aa');
    const bb = registry.withTenant('bb', async () => log.push('bb work'));
    await evicting; // aa is the least recently used; it is busy, so it drains
    const again = await registry.acquire('aa');
    expect(again.store).toBe(lease.store);
    lease.release();
    expect(again.store.closed).toBe(false);
    other.release(); // cc was chosen instead
    await bb;
    again.release();
    expect(opens.get('aa')).toBe(1);
    expect(log).toEqual(['open aa', 'open cc', 'close cc', 'open bb', 'bb work']);
  });

  test('a request that waited for a draining store is served when a later request keeps that store open', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { registry, log, event } = harness({ openTenantsMax: 2 });
    const lease = await registry.acquire('aa');
    await vi.advanceTimersByTimeAsync(1_000); // aa past its residency
    const other = await registry.acquire('cc'); // cc still in its own
    other.release();
    const evicting = event('closing', 'aa');
    const bb = registry.withTenant('bb', async () => log.push('bb work'));
    await evicting; // aa is the only store past its residency; it is busy, so it drains
    let waited: { store: unknown; release(): void } | undefined;
    void registry.acquire('aa').then((l) => (waited = l)); // cc cannot go instead yet: it waits for aa's close
    await vi.advanceTimersByTimeAsync(1_000); // cc past its residency
    const again = await registry.acquire('aa'); // now cc can go instead: aa is kept open
    expect(again.store).toBe(lease.store);
    await bb; // cc closed and bb opened: the first request had all that time to be served
    expect(waited?.store, 'the first request for aa, waiting for a close that no longer comes, was never served').toBe(lease.store);
    lease.release();
    again.release();
    waited!.release();
    await registry.close();
  });

  test('with no other store to evict, a request for a draining store waits for its close and reopens it after the waiting tenant', async () => {
    const { registry, log, opens, event } = harness({ openTenantsMax: 1 });
    const lease = await registry.acquire('aa');
    const evicting = event('closing', 'aa');
    const bb = registry.withTenant('bb', async () => log.push('bb work'));
    await evicting;
    const again = registry.acquire('aa'); // kept, it would hold bb off for as long as aa stays busy
    lease.release();
    await bb;
    const reopened = await again;
    expect(reopened.store).not.toBe(lease.store);
    reopened.release();
    expect(opens.get('aa')).toBe(2);
    expect(log).toEqual(['open aa', 'close aa', 'open bb', 'bb work', 'close bb', 'open aa']);
  });

  test('a lease released from inside the eviction event closes the store once and frees one slot', async () => {
    // The server does this: on `closing … evicted` it closes the tenant's idle sessions, whose
    // leases are released right there, before startClose has returned.
    const events: TenantRegistryEvent[] = [];
    let sessionLease: { release(): void } | undefined;
    const { registry, highWater } = harness({
      openTenantsMax: 1,
      onEvent: (event) => {
        events.push(event);
        if (event.kind === 'closing' && event.tenant === 'aa') sessionLease?.release();
      },
    });
    sessionLease = await registry.acquire('aa');
    const held = await registry.acquire('bb'); // evicts aa, whose session lets go inside the event
    const cc = registry.withTenant('cc', async (store) => store.tenant); // must wait for bb's slot
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(events.filter((event) => event.kind === 'close_failed')).toEqual([]);
    expect(registry.stats()).toMatchObject({ slotsUsed: 1, waitingForSlot: 1 }); // cc still waits for bb's slot
    held.release();
    expect(await cc).toBe('cc');
    expect(highWater()).toBe(1);
  });

  test('two tenants contending for one slot each get runs of work, not one call per open', async () => {
    // A subscriber that reconnects at once after its eviction (a WebSocket client ignoring the
    // advice to pause after 1013) against a sequential writer of another tenant: without a
    // residency each of the writer's calls evicted the subscriber and paid a whole open.
    const openDelayMs = 30;
    const subscriberLeases = new Set<{ release(): void }>();
    let subscriberOpens = 0;
    let running = true;
    /** Set when the store is evicted while a lease is being granted: the server lets that lease go too (ws-eviction-race). */
    let granting: { evicted: boolean } | undefined;
    const resubscribe = (): void => {
      if (!running) return;
      const grant = { evicted: false };
      granting = grant;
      void registry.acquire('aa').then((lease) => {
        granting = undefined;
        if (grant.evicted) return lease.release();
        subscriberOpens += 1;
        subscriberLeases.add(lease);
      }, () => undefined);
    };
    const { registry, opens } = harness({
      openTenantsMax: 1,
      open: () => new Promise((resolve) => setTimeout(resolve, openDelayMs)),
      onEvent: (event) => {
        if (event.tenant !== 'aa') return;
        if (event.kind === 'closing') {
          // The server ends an evicted tenant's streams in this event...
          for (const lease of subscriberLeases) lease.release();
          subscriberLeases.clear();
          if (granting !== undefined) granting.evicted = true;
        }
        if (event.kind === 'closed') setImmediate(resubscribe); // ...and its client reconnects at once
      },
    });
    resubscribe();
    // The writer goes on until the subscriber has had the slot back twice (bounded).
    let writes = 0;
    while (subscriberOpens < 3 && writes < 2_000) {
      await registry.withTenant('bb', () => new Promise((resolve) => setTimeout(resolve, 5)));
      writes += 1;
    }
    running = false;
    expect(subscriberOpens).toBe(3); // the subscriber was not starved
    // Each open of bb served a run of writes, not one (at most one open per four writes).
    expect(writes / opens.get('bb')!).toBeGreaterThanOrEqual(4);
    for (const lease of subscriberLeases) lease.release();
    await registry.close();
  });

  test('a request for a store whose close has begun waits for the close and reopens it', async () => {
    const closeGate = deferred();
    let slowCloses = 1;
    const { registry, opens, event } = harness({
      openTenantsMax: 1,
      close: async () => {
        if (slowCloses-- > 0) await closeGate.promise;
      },
    });
    const first = await registry.withTenant('aa', async (store) => store);
    const evicting = event('closing', 'aa');
    const bb = registry.withTenant('bb', async () => 'bb');
    await evicting; // aa was idle: its close has begun and is held at the gate
    const again = registry.withTenant('aa', async (store) => store);
    closeGate.resolve();
    expect(await bb).toBe('bb');
    const reopened = await again;
    expect(reopened).not.toBe(first);
    expect(first.closed).toBe(true);
    expect(reopened.closed).toBe(false);
    expect(opens.get('aa')).toBe(2);
  });

  test('an idle store is closed after idleCloseMs and reopened on the next request', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { registry, log, opens, event } = harness({ idleCloseMs: 1_000 });
    await registry.withTenant('aa', async () => undefined);
    await vi.advanceTimersByTimeAsync(999);
    expect(log).toEqual(['open aa']);
    const closed = event('closed', 'aa');
    await vi.advanceTimersByTimeAsync(1);
    await closed;
    expect(log).toEqual(['open aa', 'close aa']);
    await registry.withTenant('aa', async () => undefined);
    expect(opens.get('aa')).toBe(2);
  });

  test('a store with work in flight is never idle-closed, and each use restarts the idle clock', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { registry, log, event } = harness({ idleCloseMs: 1_000 });
    const lease = await registry.acquire('aa');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(log).toEqual(['open aa']);
    lease.release();
    await vi.advanceTimersByTimeAsync(600);
    await registry.withTenant('aa', async () => undefined);
    await vi.advanceTimersByTimeAsync(600);
    expect(log).toEqual(['open aa']);
    const closed = event('closed', 'aa');
    await vi.advanceTimersByTimeAsync(400);
    await closed;
    expect(log).toEqual(['open aa', 'close aa']);
  });

  test('with idleCloseNever a store is never closed for idleness, and still closes at shutdown', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { registry, log } = harness({ idleCloseMs: idleCloseNever });
    await registry.withTenant('aa', async () => undefined);
    await vi.advanceTimersByTimeAsync(7 * 24 * 3_600_000);
    expect(log).toEqual(['open aa']);
    await registry.close();
    expect(log).toEqual(['open aa', 'close aa']);
  });

  test('a failed open reaches every waiting request, frees its slot, and the next request retries', async () => {
    let failures = 1;
    const { registry, opens } = harness({
      openTenantsMax: 1,
      open: async () => {
        if (failures-- > 0) throw new MemoryError('unavailable', 'disk on fire');
      },
    });
    const attempts = await Promise.allSettled(Array.from({ length: 5 }, () => registry.withTenant('aa', async () => 'ok')));
    expect(attempts.map((attempt) => attempt.status)).toEqual(Array(5).fill('rejected'));
    expect(registry.stats().slotsUsed).toBe(0);
    expect(await registry.withTenant('bb', async () => 'ok')).toBe('ok');
    expect(await registry.withTenant('aa', async () => 'ok')).toBe('ok');
    expect(opens.get('aa')).toBe(1);
  });

  test('a failed store is refused until its backoff is over, then the next request reopens it', async () => {
    let nowMs = 1_000_000;
    const events: string[] = [];
    const { registry, log } = harness({ nowMs: () => nowMs, onEvent: (e) => e.kind === 'closing' && events.push(e.why) });
    const first = await registry.withTenant('aa', async (store) => store);
    first.failed = true;
    const refused = await registry.withTenant('aa', async () => 'served').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StoreReopenPending);
    expect(refused).toMatchObject({ code: 'unavailable', retryAfterMs: failedStoreReopenDelayMsMin });
    nowMs += failedStoreReopenDelayMsMin - 1;
    await expect(registry.withTenant('aa', async () => 'served')).rejects.toMatchObject({ retryAfterMs: 1 });
    expect(log).toEqual(['open aa']); // not hammered: no reopen before the backoff
    nowMs += 1;
    const reopened = await registry.withTenant('aa', async (store) => store);
    expect(reopened).not.toBe(first);
    expect(reopened.failed).toBe(false);
    expect(log).toEqual(['open aa', 'close aa', 'open aa']);
    expect(events).toEqual(['failed']);
  });

  test('a store that keeps failing is reopened at most once per doubling backoff, up to its maximum', async () => {
    let nowMs = 1_000_000;
    const { registry, opens } = harness({ nowMs: () => nowMs });
    let store = await registry.withTenant('aa', async (s) => s);
    const waitsMs: number[] = [];
    for (let reopen = 0; reopen < 9; reopen++) {
      store.failed = true;
      const refused = (await registry.withTenant('aa', async () => undefined).catch((error: unknown) => error)) as StoreReopenPending;
      waitsMs.push(refused.retryAfterMs);
      nowMs += refused.retryAfterMs;
      store = await registry.withTenant('aa', async (s) => s);
    }
    const min = failedStoreReopenDelayMsMin;
    expect(waitsMs).toEqual([min, 2 * min, 4 * min, 8 * min, 16 * min, 32 * min, failedStoreReopenDelayMsMax, failedStoreReopenDelayMsMax, failedStoreReopenDelayMsMax]);
    expect(opens.get('aa')).toBe(10);
    // Sound for its whole wait, the store forgets the backoff: a new failure waits the minimum again.
    nowMs += failedStoreReopenDelayMsMax;
    await registry.withTenant('aa', async () => undefined);
    store.failed = true;
    await expect(registry.withTenant('aa', async () => undefined)).rejects.toMatchObject({ retryAfterMs: failedStoreReopenDelayMsMin });
  });

  test('a failed store that other work still holds is not closed under it; a reopen whose open fails waits for the backoff', async () => {
    let nowMs = 1_000_000;
    let openFails = false;
    const { registry, log } = harness({
      nowMs: () => nowMs,
      open: async () => {
        if (openFails) throw Object.assign(new Error('EIO: i/o error, open'), { code: 'EIO' });
      },
    });
    const lease = await registry.acquire('aa');
    lease.store.failed = true;
    await expect(registry.withTenant('aa', async () => undefined)).rejects.toBeInstanceOf(StoreReopenPending); // its backoff starts
    nowMs += failedStoreReopenDelayMsMin;
    await expect(registry.withTenant('aa', async () => undefined)).rejects.toMatchObject({ retryAfterMs: failedStoreReopenDelayMsMin });
    expect(lease.store.closed).toBe(false);
    lease.release();
    openFails = true;
    const openRefused = await registry.withTenant('aa', async () => undefined).catch((error: unknown) => error);
    expect(openRefused).not.toBeInstanceOf(StoreReopenPending); // the reopen's open failed
    expect(openRefused).toMatchObject({ code: 'unavailable' });
    expect(log).toEqual(['open aa', 'close aa']);
    await expect(registry.withTenant('aa', async () => undefined)).rejects.toMatchObject({ retryAfterMs: 2 * failedStoreReopenDelayMsMin });
    openFails = false;
    nowMs += 2 * failedStoreReopenDelayMsMin;
    expect(await registry.withTenant('aa', async (store) => store.failed)).toBe(false);
    expect(log).toEqual(['open aa', 'close aa', 'open aa']);
  });

  test('a tenant that cannot get a slot in time fails busy, and the registry stays usable', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { registry, event } = harness({ openTenantsMax: 1 });
    const pinned = await registry.acquire('aa');
    const waiting = event('waiting_for_slot', 'bb');
    const starved = registry.withTenant('bb', async () => 'ran');
    const verdict = starved.then(
      () => 'ran',
      (error: MemoryError) => error.code,
    );
    await waiting;
    await vi.advanceTimersByTimeAsync(registry.slotWaitMs);
    expect(await verdict).toBe('busy');
    pinned.release();
    expect(await registry.withTenant('bb', async () => 'ran')).toBe('ran');
    expect(registry.stats()).toMatchObject({ slotsUsed: 1, waitingForSlot: 0 });
  });

  test('close waits for admitted work, closes every store, then refuses new work', async () => {
    const { registry, log } = harness();
    const work = deferred();
    const running = registry.withTenant('aa', async () => {
      await work.promise;
      log.push('aa work ends');
    });
    await registry.withTenant('bb', async () => undefined);
    const closing = registry.close();
    work.resolve();
    await Promise.all([running, closing]);
    expect(log.indexOf('aa work ends')).toBeLessThan(log.indexOf('close aa'));
    expect(log).toContain('close bb');
    await expect(registry.withTenant('aa', async () => undefined)).rejects.toMatchObject({ code: 'unavailable' });
  });

  test('200 tenants under a bound of 8: every call sees only its own open store, never more than 8 open', async () => {
    const { registry, highWater } = harness({ openTenantsMax: 8 });
    const tenants = Array.from({ length: 200 }, (_, index) => `tenant-${index}`);
    const calls = tenants.flatMap((tenant) =>
      Array.from({ length: 5 }, (_, round) =>
        registry.withTenant(tenant, async (store) => {
          expect(store.tenant).toBe(tenant);
          expect(store.closed).toBe(false);
          await new Promise((resolve) => setImmediate(resolve));
          expect(store.closed).toBe(false);
          return `${tenant}/${round}`;
        }),
      ),
    );
    const results = await Promise.all(calls);
    expect(new Set(results).size).toBe(1000);
    expect(highWater()).toBeLessThanOrEqual(8);
    await registry.close();
    expect(registry.stats()).toMatchObject({ slotsUsed: 0, open: 0, closing: 0, waitingForSlot: 0 });
  });

  test('with a memory budget, a store whose open takes the open ones over it closes the least recently used idle one', async () => {
    const { registry, log, event } = harness({ openTenantsMax: 8, storesMemoryBytesMax: 100, bytesOf: () => 40 });
    await registry.withTenant('aa', async () => undefined);
    await registry.withTenant('bb', async () => undefined);
    await registry.withTenant('aa', async () => undefined); // bb is now the least recently used
    const evicted = event('closed', 'bb');
    await registry.withTenant('cc', async () => undefined);
    await evicted;
    expect(log).toEqual(['open aa', 'open bb', 'open cc', 'close bb']);
    expect(registry.stats()).toMatchObject({ open: 2, storesMemoryBytes: 80 });
  });

  test('when busy stores fill the memory budget, an open waits and then fails busy naming the budget', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { registry, log, event } = harness({ openTenantsMax: 8, storesMemoryBytesMax: 100, bytesOf: () => 60 });
    const pinnedA = await registry.acquire('aa');
    const pinnedB = await registry.acquire('bb'); // 60 < 100 when it asked: admitted, and nothing idle to close
    expect(log).toEqual(['open aa', 'open bb']);
    const waiting = event('waiting_for_slot', 'cc');
    const verdict = registry.withTenant('cc', async () => 'ran').then(
      () => undefined,
      (error: MemoryError) => error,
    );
    await waiting;
    await vi.advanceTimersByTimeAsync(registry.slotWaitMs);
    const error = await verdict;
    expect(error).toMatchObject({ code: 'busy', hint: expect.stringContaining('IOBOXX_STORES_MEMORY_BYTES_MAX') });
    expect(error?.message).toContain('memory budget');
    expect(log).toEqual(['open aa', 'open bb']);
    pinnedA.release(); // aa was chosen for the waiter: it closes now its work is done
    pinnedB.release();
    expect(await registry.withTenant('cc', async () => 'ran')).toBe('ran');
    expect(registry.stats()).toMatchObject({ waitingForSlot: 0 });
  });

  test('a store bigger than the whole memory budget opens when it is alone, and is closed for the next tenant', async () => {
    const { registry, log } = harness({ openTenantsMax: 8, storesMemoryBytesMax: 100, bytesOf: (tenant) => (tenant === 'big' ? 500 : 10) });
    expect(await registry.withTenant('big', async () => 'ran')).toBe('ran');
    expect(await registry.withTenant('small', async () => 'ran')).toBe('ran');
    expect(log).toEqual(['open big', 'close big', 'open small']);
    expect(registry.stats()).toMatchObject({ open: 1, storesMemoryBytes: 10 });
  });

  test('a bound below one slot is refused', () => {
    expect(() => new TenantRegistry({ dataDir, open: async () => ({ close: async () => undefined }), openTenantsMax: 0 })).toThrow(MemoryError);
  });
});
