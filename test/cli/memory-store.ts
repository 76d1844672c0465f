/** Memory stores for the CLI tests to work on, written through the engine like a server would. */
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';

/** A closed memory store of `puts` objects, in segments of at most `segmentBytesMax` bytes. */
export async function writeMemoryStore(dir: string, puts: number, segmentBytesMax: number): Promise<void> {
  const store = await Store.open({ dir, module: memoryModule, segmentBytesMax });
  const caller = { tenant: 'acme', subject: 'test' };
  // 100 callers at once: group commit makes a big log in a few seconds.
  for (let i = 0; i < puts; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, puts - i) }, (_, k) =>
      store.call('object_put', { id: `note-${i + k}`, type: 'note', attributes: { n: i + k, text: `note number ${i + k}` } }, caller)));
  }
  await store.close();
}
