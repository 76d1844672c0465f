/**
 * A finished run whose details hold U+0000 (valid in a store string; jsonb refuses it) drains
 * to run_history like any other: one such row must not stall the tenant's outbox drain, nor
 * the other runs behind it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { drainRunOutbox } from '../../storage/control/run-outbox.js';
import { openFixture, type Fixture } from '../tools/memory-fixture.js';

let dir: string;
let control: ControlPlane;
let f: Fixture;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ioboxx-run-nul-'));
  control = await openControlPlane({ dataDir: dir });
  f = await openFixture();
}, 120_000);
afterAll(async () => {
  await f?.close();
  await control?.close();
  await rm(dir, { recursive: true, force: true });
});

test('runs whose details or reason hold U+0000 drain, and so do the runs after them', async () => {
  const poisoned = await f.call('session_start', { agent: 'a1', details: { note: 'x\u0000y' } });
  await f.call('session_end', { session: poisoned.session, outcome: 'completed' });
  const plain = await f.call('session_start', { agent: 'a2' });
  await f.call('session_end', { session: plain.session, outcome: 'completed' });
  const run = await f.call('bpmn_start', { definition: 'd', start_node: 'S' });
  await f.call('bpmn_fail', { instance: run.instance, reason: 'bad\u0000reason' });

  expect(await drainRunOutbox(control, 'acme', f.memory.store)).toBe(3);
  expect(await f.memory.store.read((view) => view.table('run_outbox').size)).toBe(0);
  const history = await control.runHistory('acme', { fromMs: 0, toMs: Date.now() + 60_000, limit: 10 });
  expect(history.map((h) => h.runId).sort()).toEqual([run.instance, poisoned.session, plain.session].sort());
  expect(history.find((h) => h.runId === poisoned.session)!.details).toEqual({ note: 'x\u0000y' });
  expect(history.find((h) => h.runId === run.instance)!.details).toEqual({ reason: 'bad\u0000reason' });
  const days = await control.runHistoryAggregates('acme', 0, Date.now() + 60_000);
  expect(days.reduce((n, d) => n + d.count, 0)).toBe(3);
}, 120_000);
