/**
 * An acknowledged write survives SIGKILL: a real child process commits under concurrent
 * load and reports every acknowledgement; we kill it at random moments, reopen, and check
 * every acknowledged transaction is there, intact, and the state equals a model rebuilt
 * from the logged invocations.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, test } from 'vitest';
import { newStringTree } from '../../storage/btree.js';
import { canonicalStateHash } from '../../storage/canonical.js';
import { idempotencyTable } from '../../storage/idempotency.js';
import { encodeKey } from '../../storage/key-codec.js';
import type { Row } from '../../storage/schema.js';
import { Store } from '../../storage/store.js';
import { counterModule, objectsTable } from '../support/counter-module.js';

const rounds = 20;
const child = path.join(import.meta.dirname, 'commit-child.ts');

interface RoundResult {
  readonly acks: Map<number, number>; // offset -> by
}

function runAndKill(dir: string, killAfterAcks: number): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acks = new Map<number, number>();
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let killed = false;
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const [kind, a, b] = line.split(' ');
      if (kind === 'ack') acks.set(Number(a), Number(b));
      if (!killed && acks.size >= killAfterAcks) {
        killed = true;
        proc.kill('SIGKILL');
      }
    });
    proc.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ acks });
      else reject(new Error(`child exited ${code}: ${stderr}`));
    });
  });
}

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
      const { acks } = await runAndKill(dir, 1 + Math.floor(Math.random() * 1500));
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
