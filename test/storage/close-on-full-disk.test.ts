/**
 * Store.close on a full disk: the clean-close checkpoint cannot be written, and the store must
 * still let go of its files and its lock, or the tenant stays locked out until a restart.
 */
import { mkdtempSync, readdirSync, readlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkpointFileName } from '../../storage/log/checkpoint.js';
import { Store } from '../../storage/store.js';
import { counterModule, testCaller } from '../support/counter-module.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'ioboxx-close-full-'));

/** This process's open file descriptors on files under `dir`. */
function descriptorsUnder(dir: string): string[] {
  const open: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + path.sep)) open.push(target);
    } catch {
      // closed meanwhile (the readdir's own descriptor)
    }
  }
  return open;
}

describe('close on a full disk', () => {
  test('a checkpoint that fails with ENOSPC is reported, and the files and the lock are released: the store opens again in this process with its state', async () => {
    const dir = tmp();
    const fl = new FaultyFileLayer();
    const store = await Store.open({ dir, module: counterModule, fileLayer: fl });
    await store.call('put', { id: 'kept', type: 't', n: 1 }, testCaller);
    const hash = store.stateHash();
    fl.enospcDurableWrites.add(checkpointFileName);
    await expect(store.close()).rejects.toMatchObject({
      code: 'ENOSPC', message: expect.stringContaining('without writing its checkpoint'), hint: expect.stringContaining('free disk space'),
    });
    expect(descriptorsUnder(dir), 'descriptors the failed close left open').toEqual([]);
    fl.enospcDurableWrites.clear();
    const reopened = await Store.open({ dir, module: counterModule, fileLayer: fl });
    expect(reopened.report.checkpointVerified).toBe(false); // none was written: replayed and rehashed instead
    expect(reopened.stateHash()).toBe(hash);
    await reopened.close();
  });
});
