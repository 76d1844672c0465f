/**
 * A store written by a release whose module had a table this one drops (without retiring it):
 * `store verify` refuses it naming the table and what to do (exit 1, code table_not_in_module),
 * and `store inspect` reports the open's refusal with the same words; nothing is changed, so the
 * release before still opens it. Before, verify called the snapshot damaged and fell back to the
 * log ('unknown table gone'), and inspect listed the snapshot as a damaged one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { z } from 'zod';
import { defineReducer, type StoreModule } from '../../storage/reducer.js';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { cli } from './cli-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-not-in-module-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The memory module of a release before, with one more table (`gone`) than this one. */
const before: StoreModule = {
  ...memoryModule,
  tables: [...memoryModule.tables, { name: 'gone', columns: [{ name: 'id', type: 'string' }], primaryKey: ['id'] }],
  reducers: [...memoryModule.reducers, defineReducer({
    name: 'gone_put',
    args: z.object({ id: z.string() }),
    run(ctx, args) {
      ctx.table('gone').insert(args);
      return {};
    },
  })],
};

async function writtenBefore(name: string, snapshot: boolean): Promise<{ dir: string; hash: string }> {
  const dir = path.join(work, name);
  const store = await Store.open({ dir, module: before });
  await store.call('gone_put', { id: 'kept' }, { tenant: 'acme', subject: 'test' });
  if (snapshot) await store.snapshot();
  const hash = store.stateHash();
  await store.close();
  return { dir, hash };
}

describe.concurrent('a store holding a table the module no longer declares', () => {
  test.each([['snapshotted', true], ['log only', false]] as const)('%s: store verify refuses it naming the table; the release before still opens it', async (name, snapshot) => {
    const { dir, hash } = await writtenBefore(`verify-${name.replace(' ', '-')}`, snapshot);
    const r = await cli(['store', 'verify', dir, '--json']);
    expect(r.code, r.stderr).toBe(1);
    const answer = JSON.parse(r.stdout) as { ok: boolean; code: string; message: string; hint: string };
    expect(answer).toMatchObject({ ok: false, code: 'table_not_in_module' });
    expect(answer.message).toContain('table gone');
    expect(answer.message).toContain(snapshot ? 'snapshot' : 'frame of offset 0');
    expect(answer.hint).toContain('retiredTables');
    const back = await Store.open({ dir, module: before });
    expect(back.stateHash()).toBe(hash);
    expect(back.report.snapshotsSkipped).toEqual([]);
    await back.close();
  });

  test('store inspect reports the open\'s refusal with the table and the hint', async () => {
    const { dir } = await writtenBefore('inspect', true);
    const r = await cli(['store', 'inspect', dir, '--json']);
    const report = JSON.parse(r.stdout) as { recovery: { opens: boolean; reason: string; hint: string } };
    expect(report.recovery).toMatchObject({ opens: false, reason: expect.stringContaining('table gone'), hint: expect.stringContaining('retiredTables') });
  });
});
