/**
 * What the open refuses, `store inspect` and `tenants list --check` list as a problem (exit 3),
 * judged by the engine's own open run in memory: a log that ends before the clean-close
 * checkpoint or before a snapshot, a checkpoint whose state hash the recovered state does not
 * have, and a snapshot whose manifest the open finds invalid though its file hashes match. The
 * LAST OFFSET `tenants list` shows is the log's, never a snapshot's. Real stores, the real CLI.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TenantRow } from '../../server/cli/tenant-commands.js';
import type { InspectReport } from '../../storage/inspect.js';
import { Store } from '../../storage/store.js';
import { memoryModule } from '../../tools/index.js';
import { cli } from './cli-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-inspect-refusals-'));
const pristine = path.join(work, 'pristine');
const segment = (dir: string, first: number) => path.join(dir, 'log', `${String(first).padStart(20, '0')}.log`);
const snapshot = (dir: string, offset: number) => path.join(dir, 'snapshots', String(offset).padStart(20, '0'));

/** 200 puts, snapshots at 49 and 149, segments of ~16 KiB, closed cleanly (checkpoint at 199). */
async function writeStore(dir: string): Promise<void> {
  const store = await Store.open({ dir, module: memoryModule, segmentBytesMax: 16 * 1024 });
  const caller = { tenant: 'acme', subject: 'test' };
  for (let i = 0; i < 200; i++) {
    await store.call('object_put', { id: `note-${i}`, type: 'note', attributes: { n: i, text: `note number ${i} `.repeat(8) } }, caller);
    if (i === 49 || i === 149) await store.snapshot();
  }
  await store.close();
}

let copies = 0;
function damagedCopy(damage: (dir: string) => void): string {
  const dir = path.join(work, `copy-${copies++}`);
  cpSync(pristine, dir, { recursive: true });
  damage(dir);
  return dir;
}

const lastSegmentGone = (dir: string) => rmSync(segment(dir, lastSegmentFirst));
function snapshotPastEnd(dir: string): void {
  renameSync(snapshot(dir, 149), snapshot(dir, 300));
  const manifest = path.join(snapshot(dir, 300), 'manifest.json');
  writeFileSync(manifest, readFileSync(manifest, 'utf8').replace(/"offset":\s*149/, '"offset": 300'));
}
function checkpointHashAltered(dir: string): void {
  const file = path.join(dir, 'log', 'checkpoint.json');
  writeFileSync(file, readFileSync(file, 'utf8').replace(/"stateHash":\s*"[0-9a-f]+"/, `"stateHash":"${'0'.repeat(64)}"`));
}
function manifestTableCountAltered(dir: string): void {
  const manifest = path.join(snapshot(dir, 149), 'manifest.json');
  const text = readFileSync(manifest, 'utf8');
  expect(text).toMatch(/"objects":\s*150/);
  writeFileSync(manifest, text.replace(/"objects":\s*150/, '"objects": 151'));
}

let lastSegmentFirst = 0;

async function inspect(dir: string): Promise<{ code: number | null; report: InspectReport & { ok: boolean } }> {
  const r = await cli(['store', 'inspect', dir, '--json']);
  return { code: r.code, report: JSON.parse(r.stdout) as InspectReport & { ok: boolean } };
}

beforeAll(async () => {
  await writeStore(pristine);
  const { readdirSync } = await import('node:fs');
  const segments = readdirSync(path.join(pristine, 'log')).filter((f) => f.endsWith('.log')).sort();
  expect(segments.length).toBeGreaterThanOrEqual(3);
  lastSegmentFirst = Number(segments.at(-1)!.slice(0, -'.log'.length));
  expect(lastSegmentFirst).toBeGreaterThan(149); // snapshot 149 and the checkpoint both reach into the last segment
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.concurrent('store inspect judges as the open does', () => {
  test('a healthy closed store: the open recovers it, no problem, exit 0, "ok":true', async () => {
    const { code, report } = await inspect(pristine);
    expect(report.recovery).toMatchObject({ opens: true, lastOffset: 199, snapshotOffset: 149 });
    expect(report.ok).toBe(true);
    expect(code).toBe(0);
  });

  test('the last segment deleted (checkpoint at 199): the refusal is a problem, exit 3', async () => {
    const dir = damagedCopy(lastSegmentGone);
    const { code, report } = await inspect(dir);
    expect(report.recovery).toMatchObject({ opens: false, reason: expect.stringContaining(`transactions ${lastSegmentFirst}..199 were acknowledged and are not in the log`) });
    expect(report.ok).toBe(false);
    expect(code).toBe(3);
    const text = await cli(['store', 'inspect', dir]);
    expect(text.code).toBe(3);
    expect(text.stdout).toContain('open: PROBLEM: the store refuses to open:');
  });

  test('a snapshot past the log end: the refusal is a problem, exit 3', async () => {
    const { code, report } = await inspect(damagedCopy(snapshotPastEnd));
    expect(report.recovery).toMatchObject({ opens: false, reason: expect.stringContaining('snapshot 00000000000000000300 was taken at offset 300') });
    expect(code).toBe(3);
  });

  test("a checkpoint whose state hash the recovered state does not have: the refusal is a problem, exit 3", async () => {
    const dir = damagedCopy(checkpointHashAltered);
    const { code, report } = await inspect(dir);
    expect(report.recovery).toMatchObject({ opens: false, file: path.join(dir, 'log', 'checkpoint.json'), reason: expect.stringContaining('differs from the hash') });
    expect(code).toBe(3);
  });

  test('a manifest table count altered outside the file hashes: a bad snapshot, as the open skips it; exit 3', async () => {
    const { code, report } = await inspect(damagedCopy(manifestTableCountAltered));
    const bad = report.snapshots.find((s) => s.offset === 149)!;
    expect(bad.problem).toBe('table objects has 150 rows, manifest says 151');
    expect(report.recovery).toMatchObject({ opens: true, snapshotOffset: 49 });
    expect(code).toBe(3);
  });
});

describe('tenants list --check judges as the open does', () => {
  test('each store the open refuses is damaged (exit 3), and LAST OFFSET is the log end', async () => {
    const data = path.join(work, 'data');
    mkdirSync(path.join(data, 'tenants'), { recursive: true });
    const tenants: Record<string, (dir: string) => void> = {
      lost: lastSegmentGone, past: snapshotPastEnd, hash: checkpointHashAltered, manifest: manifestTableCountAltered, good: () => undefined,
    };
    for (const [tenant, damage] of Object.entries(tenants)) {
      const dir = path.join(data, 'tenants', tenant);
      cpSync(pristine, dir, { recursive: true });
      damage(dir);
    }
    const r = await cli(['tenants', 'list', '--check', '--json', '--data-dir', data]);
    expect(r.code, r.stderr).toBe(3);
    const rows = Object.fromEntries((JSON.parse(r.stdout) as { tenants: TenantRow[] }).tenants.map((row) => [row.tenant, row as TenantRow & { lastOffset: number; check: { ok: boolean; damage?: { reason: string }[] } }]));
    expect(rows.good!.check).toEqual({ ok: true });
    for (const tenant of ['lost', 'past', 'hash', 'manifest']) expect(rows[tenant]!.check.ok, tenant).toBe(false);
    expect(rows.lost!.check.damage![0]!.reason).toContain('the store refuses to open');
    expect(rows.lost!.lastOffset).toBe(lastSegmentFirst - 1);
    expect(rows.past!.lastOffset).toBe(199);
    expect(rows.manifest!.check.damage![0]!.reason).toBe('table objects has 150 rows, manifest says 151');
  }, 120_000);
});
