/**
 * Crash-test child: opens the store in argv[2], commits `bump` calls from 32 concurrent
 * callers forever and prints `ack OFFSET BY` for each acknowledged call. The parent kills
 * it with SIGKILL at a random moment.
 */
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';

const dir = process.argv[2]!;
const store = await Store.open({ dir, module: counterModule, snapshotEveryTx: 700 });
process.stdout.write(`open ${store.lastOffset}\n`);
let j = store.lastOffset + 1;
const callers = Array.from({ length: 32 }, async () => {
  for (;;) {
    const by = ++j;
    const r = await store.call('bump', { id: `c${by % 17}`, by }, testCaller);
    process.stdout.write(`ack ${r.offset} ${by}\n`);
  }
});
await Promise.all(callers);
