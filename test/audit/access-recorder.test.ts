import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import { pino } from 'pino';
import type { TxRecord } from '../../storage/changes.js';
import type { Row } from '../../storage/schema.js';
import { memoryTools, openTenantMemory } from '../../tools/index.js';
import type { TenantMemory } from '../../tools/memory.js';
import { accessLogAppendEntriesMax } from '../../tools/access-log.js';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { accessRideAfterMs, accessRowsPerAppendMax, createAccessRecorder, type AccessRecorder } from '../../server/audit/access-recorder.js';
import type { ControlRuntime, WithTenant } from '../../server/control/control-runtime.js';
import { StoreOpenNoRoom } from '../../server/tenants/open-refusal.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';
import { waitUntil } from '../support/wait-until.js';

const tenant = 'acme';
const principal = localPrincipal(tenant);
let dir: string;
let memory: TenantMemory;
let faults: FaultyFileLayer;
let appends: TxRecord[];
let errors: string[];
let rowsLost: number;
let changed: number;
let leases: number;
let recorder: AccessRecorder;
/** The next leases of the tenant's store throw these (a store that cannot be opened). */
let leaseRefusals: Error[];

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-access-recorder-'));
  faults = new FaultyFileLayer();
  memory = await openTenantMemory(dir, tenant, { fileLayer: faults });
  appends = [];
  errors = [];
  rowsLost = 0;
  changed = 0;
  leases = 0;
  leaseRefusals = [];
  memory.store.onCommit((txs) => appends.push(...txs.filter((tx) => tx.invocation.reducer === 'access_log_append')));
  const withTenant: WithTenant = async (wanted, fn) => {
    expect(wanted).toBe(tenant);
    const refusal = leaseRefusals.shift();
    if (refusal !== undefined) throw refusal;
    leases++;
    return fn(memory);
  };
  const log = pino({ level: 'error' }, { write: (line: string) => errors.push(line) });
  const control = { tenantChanging: async () => undefined, tenantChanged: () => changed++ } as unknown as ControlRuntime;
  recorder = createAccessRecorder({ withTenant, control: () => control, log, onRowsLost: (rows) => (rowsLost += rows) });
});

afterEach(async () => {
  await memory.close();
  rmSync(dir, { recursive: true, force: true });
});

async function accessRows(): Promise<Row[]> {
  return memory.store.read((view) => [...view.table('access_log').scan()]);
}

function call(i: number): void {
  recorder.onToolCall({ principal, tool: 'object_put', args: { id: `o${i}`, type: 't' }, outcome: 'ok', offset: i, durationMs: 1 });
}

test('calls answered in one turn are recorded by one append transaction, every row in answer order', async () => {
  const calls = 50;
  const before = Date.now();
  for (let i = 0; i < calls; i++) call(i);
  await recorder.flushed();
  expect(errors).toEqual([]);
  expect(appends).toHaveLength(1);
  const rows = await accessRows();
  expect(rows.map((r) => r['seq'])).toEqual(Array.from({ length: calls }, (_, i) => i + 1));
  expect(rows.map((r) => r['offset'])).toEqual(Array.from({ length: calls }, (_, i) => i));
  expect(rows[7]).toMatchObject({ subject: 'local', action: 'tools/call', target: 'object_put', object_ids: ['o7'], outcome: 'ok' });
  // at_ms is when the call was answered, not when its row was appended.
  for (const row of rows) expect(row['at_ms']).toBeGreaterThanOrEqual(before);
  expect(changed).toBe(1);
});

test('rows recorded while an append is in flight go into the next append; none is lost or doubled', async () => {
  call(0);
  // The first append is now queued behind the store; these arrive while it is in flight.
  await Promise.resolve();
  await Promise.resolve();
  for (let i = 1; i < 10; i++) call(i);
  const firstDurable = new Promise<void>((resolve) => {
    const stop = memory.store.onCommit(() => {
      stop();
      resolve();
    });
  });
  await firstDurable;
  for (let i = 10; i < 20; i++) call(i);
  await recorder.flushed();
  const rows = await accessRows();
  expect(rows.map((r) => r['offset'])).toEqual(Array.from({ length: 20 }, (_, i) => i));
  expect(appends.length).toBeGreaterThanOrEqual(2);
  expect(appends.length).toBeLessThanOrEqual(3);
  expect(errors).toEqual([]);
});

test('a burst larger than one append is split at the per-append bound, in order', async () => {
  expect(accessRowsPerAppendMax).toBe(accessLogAppendEntriesMax);
  const calls = accessRowsPerAppendMax * 2 + 5;
  for (let i = 0; i < calls; i++) call(i);
  await recorder.flushed();
  expect(appends.map((tx) => (tx.invocation.args as { entries: unknown[] }).entries.length)).toEqual([accessRowsPerAppendMax, accessRowsPerAppendMax, 5]);
  const rows = await accessRows();
  expect(rows.map((r) => r['offset'])).toEqual(Array.from({ length: calls }, (_, i) => i));
  // One lease per drain, held until the queue is empty (a shutdown waits for these rows).
  expect(leases).toBe(1);
});

test('resource requests and refused calls are recorded too', async () => {
  recorder.onResourceRequest({ principal, method: 'resources/read', target: 'memory://objects/o1', outcome: 'ok', durationMs: 1 });
  recorder.onResourceRequest({ principal, method: 'resources/list', target: '-', outcome: 'ok', durationMs: 1 });
  recorder.onResourceRequest({ principal, method: 'resources/subscribe', target: 'memory://objects/o1', outcome: 'forbidden', durationMs: 1 });
  recorder.onToolCall({ principal, tool: 'object_delete', args: {}, outcome: 'forbidden', durationMs: 1 });
  await recorder.flushed();
  const rows = await accessRows();
  expect(rows.map((r) => [r['action'], r['target'], r['outcome'], r['offset']])).toEqual([
    ['resources/read', 'memory://objects/o1', 'ok', null],
    ['resources/list', '-', 'ok', null],
    ['resources/subscribe', 'memory://objects/o1', 'forbidden', null],
    ['tools/call', 'object_delete', 'forbidden', null],
  ]);
});

test('when the store cannot take the rows, the loss is logged with its count, never silent', async () => {
  await memory.close();
  for (let i = 0; i < 3; i++) call(i);
  await recorder.flushed();
  expect(errors).toHaveLength(1);
  expect(JSON.parse(errors[0]!)).toMatchObject({ msg: 'access log append failed', tenant, rows: 3 });
  expect(rowsLost).toBe(3); // counted for the metrics too (ioboxx_access_log_rows_lost_total)
  memory = await openTenantMemory(dir, tenant); // for afterEach
});

test('a disk full for a moment (the append refused with ENOSPC, twice) loses no row: the append is tried again', async () => {
  faults.enospcWrites = 2;
  for (let i = 0; i < 3; i++) call(i);
  await recorder.flushed();
  expect(errors).toEqual([]);
  expect((await accessRows()).map((row) => row['offset'])).toEqual([0, 1, 2]);
  expect(faults.enospcWrites).toBe(0);
});

test('on a disk that stays full the rows wait for room, counted as waiting; a shutdown (close) ends the wait for all of them at once and loses them loudly', async () => {
  faults.enospcWrites = 1_000_000;
  const rows = accessRowsPerAppendMax + 3; // two appends: the second waits behind the first
  for (let i = 0; i < rows; i++) call(i);
  await waitUntil('the append refused twice', async () => faults.enospcWrites <= 1_000_000 - 2);
  expect(recorder.rowsWaiting()).toBe(rows);
  expect(rowsLost).toBe(0);
  const storeCalls = vi.spyOn(memory.store, 'call');
  await recorder.close();
  // One grace for the shutdown (the sum of accessAppendRetryDelaysMs), not one per append: the
  // first append used it up, so the second is tried once. When each append got the whole schedule
  // again, the second was tried 7 times and a shutdown on a full disk lasted 5.1 s per append.
  const secondTries = storeCalls.mock.calls.filter(([reducer, args]) => reducer === 'access_log_append' && (args as { entries: unknown[] }).entries.length === 3);
  expect(secondTries).toHaveLength(1);
  expect(rowsLost).toBe(rows);
  expect(errors.map((line) => (JSON.parse(line) as { msg: string; rows: number }))).toEqual([
    expect.objectContaining({ msg: 'access log append failed', tenant, rows: accessRowsPerAppendMax }),
    expect.objectContaining({ msg: 'access log append failed', tenant, rows: 3 }),
  ]);
  expect(recorder.rowsWaiting()).toBe(0);
  faults.enospcWrites = 0;
}, 30_000);

test('rows whose store cannot be opened for want of room (a server restarted on a full disk) wait for it, then are appended', async () => {
  leaseRefusals = [new StoreOpenNoRoom('ENOSPC'), new StoreOpenNoRoom('ENOSPC')];
  for (let i = 0; i < 3; i++) call(i);
  await recorder.flushed();
  expect(leaseRefusals).toEqual([]);
  expect(rowsLost).toBe(0);
  expect(errors).toEqual([]);
  expect((await accessRows()).map((row) => row['offset'])).toEqual([0, 1, 2]);
}, 20_000);

/** Every commit batch of the store, as the reducer names of its transactions. */
function watchBatches(): string[][] {
  const batches: string[][] = [];
  memory.store.onCommit((txs) => batches.push(txs.map((tx) => tx.invocation.reducer)));
  return batches;
}

function putObject(i: number): Promise<unknown> {
  const put = memoryTools.find((t) => t.name === 'object_put')!;
  return put.call({ memory, caller: principal.caller }, { id: `w${i}`, type: 'note', attributes: {} } as never);
}

test('rows that waited accessRideAfterMs ride with the next write call: one batch (one fdatasync) holds the append and the call', async () => {
  const batches = watchBatches();
  call(0);
  call(1);
  const now = Date.now();
  vi.spyOn(Date, 'now').mockReturnValue(now + accessRideAfterMs); // the rows are now old enough
  // What the MCP layer does for a write tool that passed its checks: the hook, then the commit, in one tick.
  recorder.beforeWriteCall(principal);
  await putObject(0);
  vi.restoreAllMocks();
  await recorder.flushed();
  expect(batches).toEqual([['object_put', 'access_log_append']]);
  expect((await accessRows()).map((r) => r['offset'])).toEqual([0, 1]);
  expect(errors).toEqual([]);
});

test('younger rows do not ride: the write commits alone and the rows follow on their own timer', async () => {
  const batches = watchBatches();
  call(0);
  recorder.beforeWriteCall(principal);
  await putObject(0);
  await recorder.flushed();
  expect(batches).toEqual([['object_put'], ['access_log_append']]);
  expect((await accessRows()).map((r) => r['offset'])).toEqual([0]);
});

test('a write call with no rows waiting appends nothing', async () => {
  const batches = watchBatches();
  recorder.beforeWriteCall(principal);
  await putObject(0);
  await recorder.flushed();
  expect(batches).toEqual([['object_put']]);
});

// A crash between an append and the tenant's control-pending mark left its rows to the tenant's next call.
test('the rows are appended only once the control runtime has the tenant\'s control-pending mark on disk', async () => {
  let markWritten: () => void = () => undefined;
  const announced: string[] = [];
  const control = {
    tenantChanging: (wanted: string) => {
      announced.push(wanted);
      return new Promise<void>((resolve) => (markWritten = resolve));
    },
    tenantChanged: () => changed++,
  } as unknown as ControlRuntime;
  const withTenant: WithTenant = async (_wanted, fn) => fn(memory);
  const marking = createAccessRecorder({ withTenant, control: () => control, log: pino({ level: 'silent' }) });
  marking.onToolCall({ principal, tool: 'object_put', args: { id: 'o0', type: 't' }, outcome: 'ok', offset: 0, durationMs: 1 });
  await waitUntil('the mark asked for', async () => announced.length === 1);
  // Well past accessAppendDelayMs: without the mark, nothing is appended.
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(appends).toHaveLength(0);
  expect(announced).toEqual([tenant]);
  markWritten();
  await marking.flushed();
  expect(appends).toHaveLength(1);
  expect((await accessRows()).map((r) => r['target'])).toEqual(['object_put']);
  expect(changed).toBe(1);
});
