/**
 * Property: any sequence of reducer calls (some failing on purpose) leaves the store equal to
 * a plain Map model, and so does close/reopen and snapshot + reopen, hash included.
 */
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { canonicalStateHash } from '../../storage/canonical.js';
import { newStringTree } from '../../storage/btree.js';
import { encodeKey } from '../../storage/key-codec.js';
import { idempotencyTable } from '../../storage/idempotency.js';
import type { Row } from '../../storage/schema.js';
import { Store } from '../../storage/store.js';
import { counterModule, objectsTable, testCaller } from '../support/counter-module.js';

type Op =
  | { kind: 'put'; id: string; n: number }
  | { kind: 'del'; id: string }
  | { kind: 'bump'; id: string; by: number }
  | { kind: 'fail'; id: string }
  | { kind: 'reopen' }
  | { kind: 'snapshot' };

const id = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f');
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('put' as const), id, n: fc.integer({ min: -1000, max: 1000 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('del' as const), id }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('bump' as const), id, by: fc.integer({ min: -5, max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fail' as const), id }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'snapshot' as const }) },
);

function modelHash(model: Map<string, Row>): string {
  const rows = newStringTree<Row>();
  for (const [k, row] of model) rows.set(encodeKey([k]), row);
  return canonicalStateHash([{ schema: objectsTable, rows }, { schema: idempotencyTable, rows: newStringTree<Row>() }]);
}

describe('store against a model', () => {
  test('random reducer sequences, reopens and snapshots keep state and hash equal to the model', async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'ioboxx-model-'));
      let store = await Store.open({ dir, module: counterModule });
      const model = new Map<string, Row>();
      try {
        for (const o of ops) {
          switch (o.kind) {
            case 'put':
              await store.call('put', { id: o.id, type: 't', n: o.n }, testCaller);
              model.set(o.id, { id: o.id, type: 't', n: o.n, attributes: {} });
              break;
            case 'del': {
              const r = await store.call('del', { id: o.id }, testCaller).then(() => 'ok', (e: { code: string }) => e.code);
              expect(r).toBe(model.has(o.id) ? 'ok' : 'not_found');
              model.delete(o.id);
              break;
            }
            case 'bump': {
              const old = model.get(o.id);
              await store.call('bump', { id: o.id, by: o.by }, testCaller);
              model.set(o.id, { id: o.id, type: (old?.type as string) ?? 'counter', n: ((old?.n as number) ?? 0) + o.by, attributes: old?.attributes ?? {} });
              break;
            }
            case 'fail':
              await expect(store.call('put_then_fail', { id: o.id }, testCaller)).rejects.toBeTruthy();
              break;
            case 'reopen':
              await store.close();
              store = await Store.open({ dir, module: counterModule });
              break;
            case 'snapshot':
              await store.snapshot();
              break;
          }
        }
        const rows = await store.read((v) => [...v.table('objects').scan()]);
        expect(rows).toEqual([...model.keys()].sort().map((k) => model.get(k)));
        expect(store.stateHash()).toBe(modelHash(model));
        await store.close();
        store = await Store.open({ dir, module: counterModule });
        expect(store.stateHash()).toBe(modelHash(model));
      } finally {
        await store.close();
      }
    }), { numRuns: 40 });
  });
});
