/**
 * An acknowledged write survives SIGKILL: a real child process commits under concurrent
 * load and reports every acknowledgement; we kill it at random moments, reopen, and check
 * every acknowledged transaction is there, intact, and the state equals a model rebuilt
 * from the logged invocations.
 */
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { newStringTree } from '../../storage/btree.js';
import { canonicalStateHash } from '../../storage/canonical.js';
import { idempotencyTable } from '../../storage/idempotency.js';
import { encodeKey } from '../../storage/key-codec.js';
import type { Row } from '../../storage/schema.js';
import { Store } from '../../storage/store.js';
import { counterModule, objectsTable } from '../support/counter-module.js';
import { runAndKill } from './run-and-kill.js';

const rounds = 20;

describe('crash', () => {
  test(`an acknowledged write survives SIGKILL (${rounds} rounds)`, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ioboxx-crash-'));
    const allAcks = new Map<number, number>();
    // The model: counters from every logged invocation up to `modelOffset` (earlier rounds
    // stay covered by the hash check: a changed old frame changes the state).
    const counters = new Map<string, number>();
    let modelOffset = -1;
    for (let round = 0; round < rounds; round++) {
      // Random moment: after 1..1500 acknowledgements, while 32 callers keep committing.
      const acks = await runAndKill(dir, 1 + Math.floor(Math.random() * 1500));
      for (const [o, by] of acks) allAcks.set(o, by);
      const store = await Store.open({ dir, module: counterModule });
      try {
        const maxAcked = Math.max(-1, ...acks.keys());
        expect(store.lastOffset, `round ${round}: acknowledged offset ${maxAcked} lost`).toBeGreaterThanOrEqual(maxAcked);
        // Rebuild the model from the logged invocations and compare the state hash.
        for (let o = modelOffset + 1; o <= store.lastOffset; o++) {
          const tx = await store.readTx(o);
          expect(tx, `round ${round}: offset ${o} missing from the log`).toBeDefined();
          const args = tx!.invocation.args as { id: string; by: number };
          if (allAcks.has(o)) expect(args.by, `round ${round}: offset ${o} holds other work`).toBe(allAcks.get(o));
          counters.set(args.id, (counters.get(args.id) ?? 0) + args.by);
        }
        modelOffset = store.lastOffset;
        const rows = newStringTree<Row>();
        for (const [id, n] of counters) rows.set(encodeKey([id]), { id, type: 'counter', n, attributes: {} });
        const modelHash = canonicalStateHash([{ schema: objectsTable, rows }, { schema: idempotencyTable, rows: newStringTree<Row>() }]);
        expect(store.stateHash(), `round ${round}: state differs from the model at offset ${store.lastOffset}`).toBe(modelHash);
      } finally {
        await store.close();
      }
    }
    expect(allAcks.size).toBeGreaterThan(rounds);
  }, 300_000);
});
