/**
 * A real full disk, not an injected ENOSPC: the child (full-disk-child.ts) runs in a mount
 * namespace of its own (`unshare`, as root or in a user namespace) with an 8 MiB tmpfs on its
 * directory, and a memory-module store in it. It commits until the kernel refuses the writes;
 * tries a snapshot, a close, an open and the CLI's `store verify` (plain and `--read-only`) on
 * the full disk; deletes its ballast and goes on, snapshots and closes; then it copies the store
 * out of the tmpfs, and this process reopens the copy. The rolled-back offsets are reused, and
 * the zero fills, the prepared segments and the rotations all meet the full filesystem on the way.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, test } from 'vitest';
import { diskFullHint } from '../../storage/errors.js';
import { snapshotDirName } from '../../storage/snapshot/manifest.js';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { runProcess } from '../support/run-process.js';

const child = path.join(import.meta.dirname, 'full-disk-child.ts');
const tmpfsBytes = 8 * 1024 * 1024;
/** Over half the tmpfs: once it is deleted, there is room for a snapshot of everything committed. */
const ballastBytes = 5 * 1024 * 1024;
const putsAfterFree = 200;
const putsAfterSnapshot = 20;

type Event = Record<string, unknown>;

describe('a real full disk (tmpfs in a mount namespace)', () => {
  test('calls, a snapshot, a close and an open are refused with ENOSPC and a hint, losing nothing; a read-only verify works; freed, the store goes on; the reopened copy holds exactly the acknowledged calls', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'ioboxx-full-disk-'));
    const mount = path.join(root, 'mnt');
    const copy = path.join(root, 'copy');
    const script = 'mkdir -p "$0" && mount -t tmpfs -o size="$7" ioboxx-full "$0" && exec "$1" --import tsx "$2" "$0" "$3" "$4" "$5" "$6"';
    const childArgs = [mount, process.execPath, child, copy, ballastBytes, putsAfterFree, putsAfterSnapshot, tmpfsBytes].map(String);
    const run = await runProcess('unshare', ['--map-root-user', '--mount', 'sh', '-c', script, ...childArgs], {});
    expect(run.code, `the child failed (unshare and a tmpfs mount need root or user namespaces): ${run.stderr}`).toBe(0);
    const events = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Event);

    const acks = events.filter((e) => 'ack' in e);
    const refused = events.filter((e) => 'refused' in e);
    const event = (name: string): Event => events.find((e) => name in e) ?? {};
    const inPhase = (list: Event[], name: string): Event[] => list.filter((e) => String(e.id ?? e.refused).startsWith(`${name}-`));
    // The disk filled: calls were acknowledged, then 16 callers x 3 refused; reopened, 16 x 1.
    expect(inPhase(acks, 'full').length).toBeGreaterThan(100);
    expect(inPhase(refused, 'full')).toHaveLength(16 * 3);
    expect(inPhase(refused, 'reopened')).toHaveLength(16);
    for (const r of refused) {
      expect(r).toMatchObject({ code: 'unavailable', hint: diskFullHint });
      expect(r.message).toContain('the disk is full (ENOSPC)');
      expect(r.message).toContain('nothing acknowledged was lost');
    }
    // A snapshot, a close and an open on the full disk: refused, each saying what and why.
    expect(event('snapshotWhileFull')).toMatchObject({ snapshotWhileFull: 'refused', code: 'snapshot_not_taken', hint: expect.stringContaining('free disk space') });
    expect(event('snapshotWhileFull').message).toMatch(/^snapshot not taken \(write_failed\): ENOSPC/);
    // The close drops the next segment made ahead first: with it gone, the checkpoint has room.
    if ((event('preparedBytesAtClose').preparedBytesAtClose as number) >= 4096) {
      expect(event('closeWhileFull')).toEqual({ closeWhileFull: 'done' });
    } else {
      expect(event('closeWhileFull')).toMatchObject({ closeWhileFull: 'refused', code: 'ENOSPC', hint: expect.stringContaining('free disk space') });
      expect(event('closeWhileFull').message).toContain('without writing its checkpoint');
    }
    expect(event('openWhileFull')).toMatchObject({ openWhileFull: 'refused', code: 'ENOSPC', hint: expect.stringContaining('free disk space') });
    expect(event('openWhileFull').message).toContain('its LOCK file cannot be written');
    // The CLI on the full disk: `store verify` is refused the same way; `--read-only` verifies.
    expect(event('verifyWhileFull')).toMatchObject({ verifyWhileFull: 1, report: { ok: false, code: 'ENOSPC', hint: expect.stringContaining('store verify --read-only') } });
    // Reopened (a page freed): exactly what was acknowledged before the disk filled, as the read-only verify said.
    const fullAcks = inPhase(acks, 'full');
    const reopened = event('reopened');
    expect(reopened).toMatchObject({ reopened: Math.max(...fullAcks.map((e) => e.ack as number)), objects: fullAcks.length });
    expect(event('readOnlyVerifyWhileFull')).toMatchObject({
      readOnlyVerifyWhileFull: 0, report: { readOnly: true, lastOffset: reopened.reopened, stateHash: reopened.stateHash, tables: { objects: fullAcks.length } },
    });
    // Freed, every call goes through, and so does the snapshot.
    expect(inPhase(acks, 'freed')).toHaveLength(putsAfterFree);
    expect(inPhase(acks, 'after-snapshot')).toHaveLength(putsAfterSnapshot);
    const taken = event('snapshotAfterFree');
    const closed = event('closed');
    expect(closed.failed).toBe(false);

    // Every offset was acknowledged once: the refused calls' offsets went to later calls.
    const offsets = acks.map((e) => e.ack as number).sort((a, b) => a - b);
    expect(offsets).toEqual(offsets.map((_, i) => i));
    expect(closed.closed).toBe(offsets.length - 1);
    // The refused snapshot left no directory; the taken one is there.
    expect(readdirSync(path.join(copy, 'snapshots'))).toEqual([snapshotDirName(taken.snapshotAfterFree as number)]);

    const store = await Store.open({ dir: copy, module: memoryModule });
    try {
      expect(store.lastOffset).toBe(closed.closed);
      expect(store.stateHash()).toBe(closed.stateHash);
      expect(store.report.snapshotOffset).toBe(taken.snapshotAfterFree);
      const rows = await store.read((view) => [...view.table('objects').scan()]);
      expect(rows).toHaveLength(acks.length);
      const byId = new Map(rows.map((row) => [row.id as string, row]));
      for (const a of acks) expect(byId.get(a.id as string)?.attributes, `acknowledged ${String(a.id)}`).toMatchObject({ n: a.n });
      for (const r of refused) expect(byId.has(r.refused as string), `refused ${String(r.refused)}`).toBe(false);
    } finally {
      await store.close();
    }
  }, 120_000);
});
