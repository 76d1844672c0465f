/**
 * The run outbox holds at most runOutboxRowsMax finished runs not yet drained to the control
 * plane: finishing one more (a session's end, a process's completion) is refused naming the
 * bound, and leaves the run as it was, so the same call succeeds once the drain has made room.
 * Filled for real, through the tools (100,000 sessions started and ended).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runOutboxRowsMax } from '../../tools/run-outbox.js';
import { alice, expectRefused, openFixture, type Fixture } from './memory-fixture.js';

let f: Fixture;
const outboxSize = () => f.memory.store.read((v) => v.table('run_outbox').size);

beforeAll(async () => {
  f = await openFixture();
  const chunk = 2000;
  for (let i = 0; i < runOutboxRowsMax; i += chunk) {
    const started = await Promise.all(Array.from({ length: Math.min(chunk, runOutboxRowsMax - i) }, () => f.call('session_start', { agent: 'filler' })));
    await Promise.all(started.map(({ session }) => f.call('session_end', { session, outcome: 'completed' })));
  }
}, 180_000);
afterAll(() => f.close());

test(`past runOutboxRowsMax (${runOutboxRowsMax}) undrained runs a finish is refused naming the bound, changes nothing, and succeeds once the drain made room`, async () => {
  expect(await outboxSize()).toBe(runOutboxRowsMax);
  const { session } = await f.call('session_start', { agent: 'late' });
  const refused = await expectRefused(f, f.call('session_end', { session, outcome: 'completed' }), 'limit_exceeded',
    new RegExp(`session ${session} cannot finish now: the run outbox holds ${runOutboxRowsMax} runs not yet copied to the control plane's run history; the limit \\(runOutboxRowsMax\\) is ${runOutboxRowsMax}`));
  expect(refused.hint).toMatch(/retry later: .* its control plane is not draining them .* the server's log says why/);
  expect(await f.call('session_get', { session })).toMatchObject({ state: 'active', outcome: null });
  const { instance } = await f.call('bpmn_start', { definition: 'd', start_node: 's' });
  await expectRefused(f, f.call('bpmn_complete', { instance }), 'limit_exceeded', /runOutboxRowsMax/);
  expect(await f.call('bpmn_instance_get', { instance })).toMatchObject({ state: 'running', tokens: [{ token: 'tok_1', node: 's' }] });
  // The control plane's drain copies a run out and removes its row: the same call now succeeds.
  const first = await f.memory.store.read((v) => v.table('run_outbox').page({ limit: 1 }).rows[0]!['run_id'] as string);
  await f.memory.store.call('run_outbox_remove', { run_id: first }, alice);
  expect(await f.call('session_end', { session, outcome: 'completed' })).toMatchObject({ duration_ms: expect.any(Number) });
  expect(await outboxSize()).toBe(runOutboxRowsMax);
});
