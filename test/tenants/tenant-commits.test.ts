/**
 * TenantCommits (server/tenants/tenant-commits.ts): a listener hears its tenant's commits from
 * whichever store instance makes them, once each, across closes and reopens.
 */
import { expect, test } from 'vitest';
import type { TxRecord } from '../../storage/changes.js';
import type { CommitListener } from '../../server/mcp/memory-source.js';
import { TenantCommits } from '../../server/tenants/tenant-commits.js';

/** A store instance's commit listeners, as Store.onCommit keeps them. */
function fakeStore() {
  const listeners = new Set<CommitListener>();
  return {
    onCommit(listener: CommitListener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    commit(offset: number) {
      const txs = [{ offset } as unknown as TxRecord];
      for (const listener of listeners) listener(txs);
    },
  };
}

const offsetsOf = (heard: (readonly TxRecord[])[]) => heard.flat().map((tx) => tx.offset);

test('a listener hears every commit once across a close and reopen, whether it listened before the first open or not', () => {
  const commits = new TenantCommits();
  const early: (readonly TxRecord[])[] = [];
  commits.listen('acme', (txs) => early.push(txs));
  const first = fakeStore();
  commits.attach('acme', first);
  first.commit(0);
  const late: (readonly TxRecord[])[] = [];
  commits.listen('acme', (txs) => late.push(txs));
  first.commit(1);
  // Evicted (closed: it commits nothing more) and opened again as a new instance.
  const second = fakeStore();
  commits.attach('acme', second);
  second.commit(2);
  expect(offsetsOf(early)).toEqual([0, 1, 2]);
  expect(offsetsOf(late)).toEqual([1, 2]);
});

test("a listener hears only its own tenant, and nothing once it stopped", () => {
  const commits = new TenantCommits();
  const heard: (readonly TxRecord[])[] = [];
  const stop = commits.listen('acme', (txs) => heard.push(txs));
  const acme = fakeStore();
  const globex = fakeStore();
  commits.attach('acme', acme);
  commits.attach('globex', globex);
  globex.commit(7);
  acme.commit(0);
  stop();
  acme.commit(1);
  expect(offsetsOf(heard)).toEqual([0]);
});
