/**
 * The registry and a real store: a tenant whose fdatasync failed is refused `unavailable` (with
 * when to retry) until its reopen backoff is over; the next request then reopens it, and the
 * reopened store holds exactly what was acknowledged and takes writes again. Over HTTP the
 * refusal is a 503 with Retry-After.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { WriteNotApplied } from '../../storage/errors.js';
import { Store } from '../../storage/store.js';
import { failedStoreReopenDelayMsMin, StoreReopenPending } from '../../server/tenants/failed-store-reopen.js';
import { TenantRegistry } from '../../server/tenants/registry.js';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { startHttpServer } from '../../server/http/http-server.js';
import { fixedPrincipal } from '../../server/http/seams.js';
import { silentLogger } from '../../server/log.js';
import { memoryCatalog, memoryTools, openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { TenantCommits } from '../../server/tenants/tenant-commits.js';
import { SingleTenantMemory } from '../../server/tenants/single-tenant-memory.js';
import { serveMemoryStdio } from '../../server/stdio.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { connectNewerHttp, connectStreams, newerRevision, toolErrorOf, type Era } from '../support/mcp-clients.js';
import { asFileLayer, FaultyFileLayer } from '../support/faulty-file-layer.js';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-failed-reopen-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

test('a store whose fdatasync failed is reopened on the first request after the backoff, with exactly the acknowledged state, and takes writes again', async () => {
  let nowMs = 1_000_000;
  const faults = new FaultyFileLayer();
  const registry = new TenantRegistry<Store>({
    dataDir,
    open: (_tenant, dir) => Store.open({ dir, module: counterModule, fileLayer: asFileLayer(faults) }),
    failed: (store) => store.failed,
    nowMs: () => nowMs,
  });
  try {
    const put = (id: string) => registry.withTenant('acme', (store) => store.call('put', { id, type: 't', n: 1 }, testCaller));
    await put('kept');
    const acknowledgedHash = await registry.withTenant('acme', async (store) => store.stateHash());
    faults.datasyncFailures = 1;
    await expect(put('lost')).rejects.toBeInstanceOf(WriteNotApplied);
    const refused = await put('meanwhile').catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(StoreReopenPending);
    expect(refused).toMatchObject({ code: 'unavailable', retryAfterMs: failedStoreReopenDelayMsMin });
    nowMs += failedStoreReopenDelayMsMin;
    const reopened = await registry.withTenant('acme', async (store) => ({ failed: store.failed, hash: store.stateHash(), lastOffset: store.lastOffset }));
    expect(reopened).toEqual({ failed: false, hash: acknowledgedHash, lastOffset: 0 });
    expect((await put('after')).offset).toBe(1);
    expect(await registry.withTenant('acme', (store) => store.read((v) => [...v.table('objects').scan()].map((r) => r.id)))).toEqual(['after', 'kept']);
  } finally {
    await registry.close();
  }
});

/** One tools/call as plain HTTP, so the status and headers of a refusal are seen as a client gets them (the lease is refused before the request is read further). */
function postToolCall(url: string): Promise<Response> {
  return fetch(`${url}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': newerRevision },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'object_get', arguments: { id: 'kept' } } }),
  });
}

test('over HTTP: a failed tenant store answers 503 with Retry-After until the backoff is over, then the next call reopens it and writes', async () => {
  let nowMs = 1_000_000;
  const faults = new FaultyFileLayer();
  const commits = new TenantCommits();
  const registry = new TenantRegistry<TenantMemory>({
    dataDir,
    open: async (tenant, dir) => {
      const memory = await openTenantMemory(dir, tenant, { fileLayer: asFileLayer(faults) });
      commits.attach(tenant, memory.store);
      return memory;
    },
    failed: (memory) => memory.store.failed,
    nowMs: () => nowMs,
  });
  const serving = await startHttpServer({
    surface: { tools: memoryTools, catalog: memoryCatalog, log: silentLogger() },
    authenticate: fixedPrincipal(localPrincipal()),
    memoryFor: async (principal) => {
      const lease = await registry.acquire(principal.caller.tenant);
      return { memory: lease.store, release: () => lease.release() };
    },
    commitsOf: (tenant, listener) => commits.listen(tenant, listener),
  });
  const client = await connectNewerHttp({ url: `${serving.url}/mcp` });
  try {
    const put = async (id: string) => toolErrorOf(await client.callTool('object_put', { id, type: 'note', attributes: {} }));
    expect(await put('kept')).toBeUndefined();
    faults.datasyncFailures = 1;
    expect(await put('lost')).toMatchObject({ code: 'unavailable', message: expect.stringContaining('not applied') });
    const refused = await postToolCall(serving.url);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe(String(failedStoreReopenDelayMsMin / 1000));
    expect(((await refused.json()) as { error: { data: unknown } }).error.data).toMatchObject({ code: 'unavailable' });
    nowMs += failedStoreReopenDelayMsMin;
    expect(await put('after')).toBeUndefined();
    expect(toolErrorOf(await client.callTool('object_get', { id: 'lost' }))).toMatchObject({ code: 'not_found' });
    expect(toolErrorOf(await client.callTool('object_get', { id: 'kept' }))).toBeUndefined();
  } finally {
    await client.close();
    await serving.close();
    await registry.close();
  }
});

test.each<Era>(['older', 'newer'])('over stdio (%s-era client): a failed store is refused unavailable with a retry hint until the backoff is over, then the next call reopens it and writes, and a subscription made before the failure hears that write', async (era) => {
  let nowMs = 1_000_000;
  const faults = new FaultyFileLayer();
  const principal = localPrincipal();
  // The stdio process's wiring (serveStdioProcess) with its store over the faulty disk.
  const tenantMemory = new SingleTenantMemory({
    dataDir,
    tenant: principal.caller.tenant,
    open: (dir) => openTenantMemory(dir, principal.caller.tenant, { fileLayer: asFileLayer(faults) }),
    nowMs: () => nowMs,
  });
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const serving = serveMemoryStdio({
    surface: { tools: memoryTools, catalog: memoryCatalog, log: silentLogger() },
    principal,
    memory: tenantMemory.memory,
    stdin,
    stdout,
  });
  const client = await connectStreams(era, stdin, stdout);
  try {
    const put = async (id: string) => toolErrorOf(await client.callTool('object_put', { id, type: 'note', attributes: {} }));
    expect(await put('kept')).toBeUndefined();
    await client.watchResource('memory://objects/after');
    faults.datasyncFailures = 1;
    expect(await put('lost')).toMatchObject({ code: 'unavailable', message: expect.stringContaining('not applied') });
    expect(await put('meanwhile')).toMatchObject({ code: 'unavailable', hint: `retry after ${failedStoreReopenDelayMsMin / 1000} s; nothing acknowledged was lost` });
    nowMs += failedStoreReopenDelayMsMin;
    expect(await put('after'), 'the write after the backoff').toBeUndefined();
    expect(await client.nextResourceUpdate()).toBe('memory://objects/after');
    expect(toolErrorOf(await client.callTool('object_get', { id: 'lost' }))).toMatchObject({ code: 'not_found' });
    expect(toolErrorOf(await client.callTool('object_get', { id: 'meanwhile' }))).toMatchObject({ code: 'not_found' });
    expect(toolErrorOf(await client.callTool('object_get', { id: 'kept' }))).toBeUndefined();
  } finally {
    await client.close();
    await serving.closed;
    await tenantMemory.close();
  }
});

test('over stdio: a store whose files were deleted is refused saying so, not as a disk that failed a write with nothing lost', async () => {
  const principal = localPrincipal();
  const tenantMemory = new SingleTenantMemory({
    dataDir,
    tenant: principal.caller.tenant,
    open: (dir) => openTenantMemory(dir, principal.caller.tenant, { filesCheckMs: 0 }),
  });
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const serving = serveMemoryStdio({ surface: { tools: memoryTools, catalog: memoryCatalog, log: silentLogger() }, principal, memory: tenantMemory.memory, stdin, stdout });
  const client = await connectStreams('older', stdin, stdout);
  try {
    const put = async (id: string) => toolErrorOf(await client.callTool('object_put', { id, type: 'note', attributes: {} }));
    expect(await put('kept')).toBeUndefined();
    await rm(join(dataDir, 'tenants'), { recursive: true, force: true }); // an `rm -rf`, a volume gone
    expect(await put('unseen')).toMatchObject({ code: 'unavailable', message: expect.stringContaining("the store's files were deleted while it was open") });
    expect(await put('meanwhile')).toEqual({
      code: 'unavailable',
      message: `the store of tenant ${principal.caller.tenant} failed (its files were deleted while it was open) and refuses work until it is reopened, in about ${failedStoreReopenDelayMsMin / 1000} s`,
      hint: `retry after ${failedStoreReopenDelayMsMin / 1000} s; what it held is gone unless an operator restores it from a backup`,
    });
  } finally {
    await client.close();
    await serving.closed;
    await tenantMemory.close().catch(() => undefined);
  }
});
