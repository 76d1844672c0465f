/**
 * Server-level denials (server/control/server-denials.ts): one not staged within
 * denialSpoolSyncDelayMs is made durable in the live spool, in batches (one write and one
 * fdatasync each); each denial is staged once, straight or with its spool, even when its staging
 * was in flight while a batch was spooled; a full disk keeps denials in memory; every limit is
 * enforced and what it loses is counted and logged. Staging runs against a fresh database on
 * the shared test Postgres; the disk is the real one, failing on demand (FaultyFileLayer).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from 'vitest';
import { denialSpoolDir, denialSpoolDirBytesMax, denialSpoolFilesMax, loadDenialSpools } from '../../server/control/denial-spool.js';
import { decodeDenialSpoolLines, denialSpoolHeaderLine } from '../../server/control/denial-spool-format.js';
import { pendingDenialsMax, startServerDenials, type ServerDenials } from '../../server/control/server-denials.js';
import { serverAuditSpoolSource, serverAuditTenant, type ServerAuditEvent } from '../../storage/control/audit-staging.js';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { FaultyFileLayer } from '../support/faulty-file-layer.js';
import { freshPostgresDatabase } from '../support/services.js';
import { waitUntil } from '../support/wait-until.js';
import { writeWholeDenialSpool } from '../support/whole-denial-spool.js';

let control: ControlPlane;
let dropDatabase: () => Promise<void>;
beforeAll(async () => {
  const db = await freshPostgresDatabase('server_denials');
  dropDatabase = db.drop;
  control = await openControlPlane({ databaseUrl: db.url });
});
afterAll(async () => {
  await control?.close();
  await dropDatabase?.();
});

let dataDir: string;
let denials: ServerDenials | undefined;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-server-denials-'));
});
afterEach(async () => {
  await denials?.close();
  denials = undefined;
  await rm(dataDir, { recursive: true, force: true });
});

/** Denials on `dataDir` through `fl`, their log lines kept. */
async function start(fl = new FaultyFileLayer()) {
  const lines: Array<Record<string, unknown> & { msg: string }> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const lost = { count: 0 };
  denials = await startServerDenials({ dataDir, log, nudge: () => undefined, fl, onLost: (count) => (lost.count += count) });
  const logged = (text: string) => lines.filter((l) => l.msg.includes(text));
  return { denials, fl, lines, logged, lost };
}

let made = 0;
const denial = (target: string): ServerAuditEvent => ({ tenant: made++ % 2 === 0 ? null : 'acme', atMs: Date.now(), subject: null, action: 'http', target, outcome: '401', reason: 'bad token' });

/** The targets of every denial in the live spools (`.jsonl`) of `dataDir`, oldest spool first. */
async function spooledTargets(): Promise<string[]> {
  const dir = denialSpoolDir(dataDir);
  const names = (await readdir(dir).catch((): string[] => [])).filter((n) => n.endsWith('.jsonl')).sort();
  const all = await Promise.all(names.map(async (n) => decodeDenialSpoolLines(await readFile(path.join(dir, n)))));
  return all.flat().map((d) => d.target);
}

/** Every staged event of both tenants whose target starts with `prefix`: [target, source]. */
async function stagedWith(prefix: string): Promise<Array<[string, string]>> {
  const events = [
    ...(await control.stagedAudit(serverAuditTenant, { limit: 1000 })),
    ...(await control.stagedAudit('acme', { limit: 1000 })),
  ];
  return events
    .map((e): [string, string] => [(e.event as { target: string }).target, e.source])
    .filter(([target]) => target.startsWith(prefix))
    .sort();
}

test('a denial not staged within denialSpoolSyncDelayMs is durable in the live spool: one write and one fdatasync per batch, not per denial', async () => {
  const fl = new FaultyFileLayer();
  const ops: string[] = [];
  fl.observe = (file, op) => void (file.endsWith('.jsonl') && ops.push(op));
  const { denials } = await start(fl);
  const targets = Array.from({ length: 20 }, (_, i) => `/batch/${i}`);
  for (const target of targets) denials.add(denial(target));
  await waitUntil('the 20 denials in the live spool', async () => (await spooledTargets()).length === 20);
  expect(await spooledTargets()).toEqual(targets);
  expect(ops, 'the header (once per spool), then the one batch').toEqual(['writev', 'datasync', 'writev', 'datasync']);
});

test('queued denials are staged straight, spooled ones with their spool under its own source, each once; the staged spool is removed', async () => {
  const { denials } = await start();
  for (const target of ['/one/spooled-a', '/one/spooled-b', '/one/spooled-c']) denials.add(denial(target));
  await waitUntil('the denials in the live spool', async () => (await spooledTargets()).length === 3);
  const [spoolName] = await readdir(denialSpoolDir(dataDir));
  const spoolSource = serverAuditSpoolSource(spoolName!.slice(0, -'.jsonl'.length));
  denials.add(denial('/one/straight-a'));
  denials.add(denial('/one/straight-b'));
  // A batch may spool the straight ones first (a slow Postgres): staged with their spool then, still once.
  await waitUntil('all five staged', async () => {
    await denials.stage(control);
    return (await stagedWith('/one/')).length >= 5;
  });
  const staged = await stagedWith('/one/');
  expect(staged.map(([target]) => target)).toEqual(['/one/spooled-a', '/one/spooled-b', '/one/spooled-c', '/one/straight-a', '/one/straight-b']);
  expect(staged.filter(([target]) => target.includes('spooled')).map(([, source]) => source)).toEqual([spoolSource, spoolSource, spoolSource]);
  expect(await readdir(denialSpoolDir(dataDir)), 'the staged spools removed').toEqual([]);
});

test('a denial whose staging is in flight when a batch is spooled is not spooled too: each is staged once', async () => {
  const { denials } = await start();
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  // Postgres slow for this denial: its staging waits until released.
  const slow = new Proxy(control, {
    get: (target, name, receiver) => (name === 'stageAuditNext'
      ? async (...args: Parameters<ControlPlane['stageAuditNext']>) => {
        await held;
        return target.stageAuditNext(...args);
      }
      : Reflect.get(target, name, receiver)),
  });
  denials.add(denial('/two/in-flight'));
  const staging = denials.stage(slow);
  denials.add(denial('/two/while-slow'));
  await waitUntil('the later denial spooled', async () => (await spooledTargets()).length === 1);
  expect(await spooledTargets(), 'the one in flight is not in the spool').toEqual(['/two/while-slow']);
  release();
  await staging;
  await denials.stage(control);
  expect((await stagedWith('/two/')).map(([target]) => target)).toEqual(['/two/in-flight', '/two/while-slow']);
  expect(await readdir(denialSpoolDir(dataDir))).toEqual([]);
});

test('a disk that refuses the spool (ENOSPC) keeps the denials in memory, logged; a clean shutdown spools them, once', async () => {
  const fl = new FaultyFileLayer();
  fl.enospcWrites = 1;
  const { denials, logged } = await start(fl);
  for (const target of ['/full/a', '/full/b']) denials.add(denial(target));
  await waitUntil('the refused spool logged', async () => logged('could not be spooled').length > 0);
  expect(logged('could not be spooled')[0]).toMatchObject({ queued: 2, err: expect.stringContaining('ENOSPC') });
  expect(await readdir(denialSpoolDir(dataDir)), 'the spool that could not be made is not left behind').toEqual([]);
  await denials.close();
  expect(await spooledTargets()).toEqual(['/full/a', '/full/b']);
});

test('a live spool whose write fails is sealed with what it holds; the failed batch goes to a new spool, never into both', async () => {
  const fl = new FaultyFileLayer();
  const { denials, logged } = await start(fl);
  denials.add(denial('/seal/first'));
  await waitUntil('the first batch spooled', async () => (await spooledTargets()).length === 1);
  fl.enospcWrites = 1; // half the line lands, then ENOSPC
  denials.add(denial('/seal/second'));
  await waitUntil('the failed write logged', async () => logged('could not be spooled').length > 0);
  await denials.close();
  const loaded = await loadDenialSpools(dataDir);
  expect(loaded.setAside).toEqual([]);
  expect(loaded.spools.map((s) => s.denials.map((d) => d.target))).toEqual([['/seal/first'], ['/seal/second']]);
});

test('a clean shutdown spools what is still queued into the live spool: nothing spooled before is written again', async () => {
  const { denials, logged } = await start();
  denials.add(denial('/close/a'));
  await waitUntil('the first denial spooled', async () => (await spooledTargets()).length === 1);
  denials.add(denial('/close/b'));
  await denials.close();
  expect(await spooledTargets()).toEqual(['/close/a', '/close/b']);
  expect(await readdir(denialSpoolDir(dataDir))).toHaveLength(1);
  expect(logged('spooled, staged after the next start')[0]).toMatchObject({ denials: 2 });
});

test('past pendingDenialsMax a denial is lost: counted and logged, never queued', async () => {
  const { denials, logged, lost } = await start();
  for (let i = 0; i < pendingDenialsMax + 5; i++) denials.add(denial(`/flood/${i}`));
  expect(lost.count, 'every lost denial counted for the metrics, logged or not yet').toBe(5);
  expect(logged('server audit denials lost')).toEqual([expect.objectContaining({ lost: 1, lostTotal: 1, why: expect.stringContaining('pendingDenialsMax') })]);
  await denials.close();
  expect(logged('server audit denials lost').at(-1)).toMatchObject({ lost: 4, lostTotal: 5 });
  expect(await spooledTargets()).toHaveLength(pendingDenialsMax);
}, 60_000);

test('a spool directory at denialSpoolFilesMax files, or at denialSpoolDirBytesMax bytes, takes no more: denials stay in memory, logged', async () => {
  for (const limit of ['files', 'bytes'] as const) {
    await rm(denialSpoolDir(dataDir), { recursive: true, force: true });
    await mkdir(denialSpoolDir(dataDir), { recursive: true });
    if (limit === 'files') {
      for (let i = 0; i < denialSpoolFilesMax; i++) await writeWholeDenialSpool(dataDir, [denial(`/kept/${i}`)]);
    } else {
      // A spool torn after its header (no denial in it), as large as the directory may hold.
      const file = path.join(denialSpoolDir(dataDir), '1700000000000-00000000-0000-4000-8000-000000000000.jsonl');
      await writeFile(file, denialSpoolHeaderLine);
      await truncate(file, denialSpoolDirBytesMax);
    }
    const before = (await readdir(denialSpoolDir(dataDir))).sort();
    const { denials, logged } = await start();
    denials.add(denial(`/over-${limit}`));
    await waitUntil(`the full spool directory (${limit}) logged`, async () => logged('denial spool full').length > 0);
    expect((await readdir(denialSpoolDir(dataDir))).sort(), 'no spool made').toEqual(before);
    if (limit === 'bytes') {
      // Once Postgres answers, the denial held in memory is staged, after the old spool (which frees the room).
      await denials.stage(control);
      expect((await stagedWith(`/over-${limit}`)).map(([target]) => target)).toEqual([`/over-${limit}`]);
      expect(await readdir(denialSpoolDir(dataDir))).toEqual([]);
    }
    await denials.close();
  }
}, 120_000);
