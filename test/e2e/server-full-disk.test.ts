/**
 * The real built server on a real full disk, as an agent and an operator meet it. A holder
 * process (`unshare`: a mount namespace of its own, as root or in a user namespace) mounts a
 * small tmpfs and waits; each server is started inside that namespace (`nsenter`), in local mode
 * with its data directory (tenant store and the embedded PGlite control plane both) on the tmpfs.
 * This process reaches the tmpfs through the holder's root (`/proc/PID/root`) to put and delete
 * ballast. An SDK client over Streamable HTTP fills the disk with object_put until the kernel
 * refuses, reads on the full disk, watches /readyz and /metrics, frees the space, fills the disk
 * again and restarts the server on it, frees it again, and finds every acknowledged write.
 *
 * The tests run in order and share the server: each one is a step of the same incident.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectOlderHttp, connectStreams, toolErrorOf, type ErrorBody, type McpTestClient, type ToolResult } from '../support/mcp-clients.js';
import { diskFullHint } from '../../storage/errors.js';
import { waitUntil } from '../support/wait-until.js';
import { parsePrometheusText } from '../ops/prometheus-text.js';
import { baseEnv, repoRoot, serverBin, startHttpServer, type ServerProcess } from './server-process.js';
import { childExit } from '../support/child-exit.js';

/** The embedded PGlite cluster takes ~40 MiB of it; the rest is ballast and what the store gets. */
const tmpfsBytes = 64 * 1024 * 1024;
/** Room left beside the ballast for the store to fill: a few dozen 100 KB puts. */
const roomBytes = 3 * 1024 * 1024;
/** /readyz's floor: met with the ballast gone, not on the full disk. */
const freeBytesMin = 1024 * 1024;
/** Attribute padding of each fill phase: big puts first, then smaller ones, to the last bytes the store holds. */
const padCharsByPhase = [100_000, 10_000, 1_000, 0];
/** A phase ends at this many refusals. */
const refusalsPerPhase = 2;
/** A bound on the whole fill, so a disk that never fills fails the test instead of hanging it. */
const fillCallsMax = 20_000;

interface Ack { readonly id: string; readonly n: number; readonly pad: number; readonly offset: number }
interface Refusal { readonly id: string; readonly error: ErrorBody | undefined }
interface AccessRow { seq: number; action: string; target: string; object_ids: string[]; outcome: string }

let root: string;
let holder: ChildProcess;
/** The tmpfs as the servers see it, and as this process reaches it (through the holder's root). */
let mount: string;
let outside: string;
let server: ServerProcess;
/** The stdio server of the last step, spawned by this process. */
let stdioServer: ChildProcess | undefined;
let client: McpTestClient;
const acks: Ack[] = [];
const refusals: Refusal[] = [];
/** The ids read by object_get and resources/read on the full disk. */
const readOnFullDisk: string[] = [];

/** Starts the holder: the tmpfs lives as long as it (and the servers in its namespace) do. */
function startHolder(dir: string): Promise<ChildProcess> {
  const script = 'mkdir -p "$0" && mount -t tmpfs -o size="$1" ioboxx-full "$0" && echo mounted && exec cat >/dev/null';
  const child = spawn('unshare', ['--map-root-user', '--mount', 'sh', '-c', script, dir, String(tmpfsBytes)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => line === 'mounted' && resolve(child));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the tmpfs holder exited ${code} (unshare and a tmpfs mount need root or user namespaces): ${stderr}`)));
  });
}

/** The command that runs the rest of its arguments in the holder's namespaces (it execs them: the pid is theirs). */
function inNamespace(): string[] {
  return ['nsenter', '-t', String(holder.pid), '-U', '-m', '--preserve-credentials'];
}

/** A server in the holder's namespace, and a client of it. `awaitControlPlane` false: on a full disk, PGlite cannot start yet. */
async function startServer(awaitControlPlane = true): Promise<void> {
  const env = { IOBOXX_DATA_DIR: path.join(mount, 'data'), IOBOXX_DATA_DIR_FREE_BYTES_MIN: String(freeBytesMin) };
  server = await startHttpServer(env, { launcher: inNamespace(), awaitControlPlane });
  client = await connectOlderHttp({ url: `${server.url}/mcp` });
}

function freeBytes(): number {
  const stats = statfsSync(outside);
  return stats.bavail * stats.bsize;
}

/** A ballast file taking all but `leaveBytes` of the free space. */
function ballast(name: string, leaveBytes: number): void {
  writeFileSync(path.join(outside, name), Buffer.alloc(freeBytes() - leaveBytes, 1));
}

/** Appends to `name` until the disk refuses, 1 MiB and then a page at a time: the disk is full to its last page. */
function topUp(name: string): void {
  for (const chunkBytes of [1024 * 1024, 4096]) {
    try {
      for (;;) appendFileSync(path.join(outside, name), Buffer.alloc(chunkBytes, 2));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    }
  }
}

async function put(id: string, n: number, pad: number): Promise<ToolResult> {
  const result = await client.callTool('object_put', { id, type: 'note', attributes: { n, pad: 'x'.repeat(pad) } });
  const error = toolErrorOf(result);
  if (error === undefined && result.isError !== true) acks.push({ id, n, pad, offset: (result.structuredContent as { offset: number }).offset });
  else refusals.push({ id, error });
  return result;
}

/** object_put in phases of smaller and smaller objects, each until refusalsPerPhase refusals: the disk is then full to the last bytes the store holds. */
async function fill(prefix: string): Promise<void> {
  let calls = 0;
  for (const [phase, pad] of padCharsByPhase.entries()) {
    let refused = 0;
    for (let i = 0; refused < refusalsPerPhase; i++) {
      expect(calls++, 'the disk never filled').toBeLessThan(fillCallsMax);
      if ((await put(`${prefix}${phase}-${i}`, calls, pad)).isError === true) refused++;
    }
    topUp('top-up'); // pages a refused write left free go to the top-up file: the next phase fills what the store holds
  }
}

function expectDiskFullRefusals(list: readonly Refusal[]): void {
  for (const r of list) {
    expect(r.error, `refusal of ${r.id}`).toMatchObject({ code: 'unavailable', hint: diskFullHint });
    expect(r.error!.message).toMatch(/^the disk is full \(ENOSPC\); this call was not applied and nothing acknowledged was lost$/);
  }
}

async function metrics(): Promise<(name: string, labels?: Record<string, string>) => number | undefined> {
  const families = parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
  return (name, labels = {}) => families.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

interface ReadyBody { checks: Array<{ name: string; ok: boolean; error?: string }>; degradedTenants: { listed: Array<Record<string, unknown>> } }

async function readiness(): Promise<{ status: number; body: ReadyBody }> {
  const response = await fetch(`${server.url}/readyz`);
  return { status: response.status, body: (await response.json()) as ReadyBody };
}

async function accessRows(): Promise<AccessRow[]> {
  const rows: AccessRow[] = [];
  let cursor: string | undefined;
  do {
    const listed = await client.callTool('access_log_list', { limit: 200, ...(cursor !== undefined && { cursor }) });
    const page = listed.structuredContent as { entries: AccessRow[]; next_cursor?: string };
    rows.push(...page.entries);
    cursor = page.next_cursor;
  } while (cursor !== undefined);
  return rows;
}

/** The process is up and its event loop answers. */
async function alive(): Promise<boolean> {
  return server.child.exitCode === null && server.child.signalCode === null && (await fetch(`${server.url}/healthz`)).status === 200;
}

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'ioboxx-e2e-full-disk-'));
  mount = path.join(root, 'mnt');
  holder = await startHolder(mount);
  outside = `/proc/${holder.pid}/root${mount}`;
  await startServer();
}, 120_000);

afterAll(async () => {
  await client?.close().catch(() => undefined);
  await server?.stop();
  if (stdioServer !== undefined && stdioServer.exitCode === null && stdioServer.signalCode === null) {
    stdioServer.kill('SIGKILL'); // a failed stdio step: the tmpfs lives as long as a process in its namespace
    await childExit(stdioServer);
  }
  if (holder !== undefined && holder.exitCode === null) {
    holder.stdin!.end(); // the holder's cat ends, the namespace and its tmpfs with it
    await childExit(holder);
  }
  rmSync(root, { recursive: true, force: true });
});

describe('the real server on a real full disk (tmpfs in a mount namespace)', () => {
  test('object_put until the disk refuses: each refusal is an isError `unavailable` saying the disk is full and what to do; the server stays up', async () => {
    ballast('ballast', roomBytes);
    await fill('p');
    expect(acks.length).toBeGreaterThan(10);
    expect(refusals).toHaveLength(padCharsByPhase.length * refusalsPerPhase);
    expectDiskFullRefusals(refusals);
    // Acknowledged offsets only grow: a refused call's offset is taken by a later one, none twice.
    const offsets = acks.map((a) => a.offset);
    expect(offsets).toEqual([...offsets].sort((a, b) => a - b));
    expect(new Set(offsets).size).toBe(offsets.length);
    expect(await alive()).toBe(true);
  }, 60_000);

  test('reads answer on the full disk: object_get, resources/read and object_find return what was acknowledged', async () => {
    const [first, last] = [acks[0]!, acks.at(-1)!];
    readOnFullDisk.push(first.id, last.id);
    const got = await client.callTool('object_get', { id: first.id });
    expect(toolErrorOf(got)).toBeUndefined();
    expect(got.structuredContent).toMatchObject({ id: first.id, attributes: { n: first.n } });
    const read = await client.readResource(`memory://objects/${last.id}`);
    expect(JSON.parse(read.contents[0]!.text!)).toMatchObject({ id: last.id, attributes: { n: last.n } });
    const found = await client.callTool('object_find', { type: 'note', where: [{ path: 'n', op: 'lte', value: 2 }] });
    expect(toolErrorOf(found)).toBeUndefined();
    const foundNs = (found.structuredContent as { objects: Array<{ attributes: { n: number } }> }).objects.map((o) => o.attributes.n);
    expect(foundNs.sort((a, b) => a - b)).toEqual([1, 2]); // the first two puts: 200 KB, within one result's bound
    expect(await alive()).toBe(true);
  });

  test('/readyz is 503 naming free bytes below the floor, not a failed store; /metrics shows the free bytes and counts the refused writes', async () => {
    const ready = await readiness();
    expect(ready.status).toBe(503);
    const stores = ready.body.checks.find((c) => c.name === 'stores')!;
    expect(stores.error).toMatch(new RegExp(`^\\d+ bytes free on the data directory's filesystem, below the floor of ${freeBytesMin}`));
    expect(ready.body.degradedTenants.listed).toEqual([]); // the store refuses writes for want of room; it has not failed
    const value = await metrics();
    expect(value('ioboxx_data_dir_free_bytes')).toBeLessThan(freeBytesMin);
    expect(value('ioboxx_commit_failures_total', { reason: 'write_failed' })).toBeGreaterThanOrEqual(refusals.length);
    expect(value('ioboxx_tenant_stores_degraded', { state: 'store_failed' })).toBe(0);
  });

  test('the access rows of the requests served on the full disk wait for room, shown in /metrics: none is lost while the disk stays full', async () => {
    // The requests above (the refused puts, the reads) have rows the disk refuses: their append is
    // tried again and again. Wait for more tries than a short retry schedule would make (the
    // appends are counted as refused writes too), or for a loss.
    const triesBefore = (await metrics())('ioboxx_commit_failures_total', { reason: 'write_failed' })!;
    await waitUntil('eight more refused appends of the waiting access rows, or a lost row', async () => {
      const value = await metrics();
      return value('ioboxx_access_log_rows_lost_total')! > 0 || value('ioboxx_commit_failures_total', { reason: 'write_failed' })! >= triesBefore + 8;
    });
    const value = await metrics();
    expect(value('ioboxx_access_log_rows_lost_total'), 'access rows lost while the disk was full').toBe(0);
    expect(value('ioboxx_access_log_rows_waiting')).toBeGreaterThan(0);
    expect(await alive()).toBe(true);
  }, 30_000);

  test('freed, writes go through without a restart, /readyz is ready, and every request made on the full disk has its access row, staged in the control plane', async () => {
    rmSync(path.join(outside, 'ballast'));
    rmSync(path.join(outside, 'top-up'));
    for (let i = 0; i < 5; i++) expect(toolErrorOf(await put(`freed-${i}`, 1_000 + i, 1_000))).toBeUndefined();
    expect((await readiness()).status).toBe(200);
    await waitUntil('the access rows appended once there is room', async () => (await metrics())('ioboxx_access_log_rows_waiting') === 0);
    const rows = await accessRows();
    const rowOf = (action: string, target: string, id?: string) =>
      rows.filter((r) => r.action === action && r.target === target && (id === undefined || r.object_ids.includes(id)));
    for (const r of refusals) expect(rowOf('tools/call', 'object_put', r.id).map((row) => row.outcome), `access row of the refused put ${r.id}`).toEqual(['unavailable']);
    const [gotId, readId] = readOnFullDisk;
    expect(rowOf('tools/call', 'object_get', gotId).map((row) => row.outcome)).toEqual(['ok']);
    expect(rowOf('resources/read', `memory://objects/${readId}`).map((row) => row.outcome)).toEqual(['ok']);
    expect(rowOf('tools/call', 'object_find').map((row) => row.outcome)).toEqual(['ok']);
    expect((await metrics())('ioboxx_access_log_rows_lost_total')).toBe(0);
    // The control plane (PGlite, on the same full disk) came through too: it stages every row (S3 is off: they stay staged).
    await waitUntil('the access rows staged in the control plane', async () => (await metrics())('ioboxx_audit_backlog_events')! >= rows.length);
  }, 30_000);

  test('stopped on a full disk, the server exits cleanly; restarted on it, it serves: a call is refused `unavailable` saying the disk is full, /readyz lists the tenant, the access rows wait', async () => {
    topUp('ballast');
    expect(await server.stop()).toBe(0);
    topUp('ballast'); // what the close's cut of the log's zero tail gave back
    await client.close().catch(() => undefined);
    // Its control plane (PGlite, on the same disk) cannot start yet: it retries while the server serves.
    await startServer(false);
    const refused = toolErrorOf(await client.callTool('object_get', { id: acks[0]!.id }));
    expect(refused).toEqual({ code: 'unavailable', message: "the tenant's store cannot be opened: the disk is full (ENOSPC); nothing acknowledged is lost", hint: diskFullHint });
    const ready = await readiness();
    expect(ready.status).toBe(503);
    expect(ready.body.degradedTenants.listed).toEqual([expect.objectContaining({ tenant: 'local', state: 'open_failed', code: 'ENOSPC' })]);
    expect((await metrics())('ioboxx_store_open_failures_total', { code: 'ENOSPC' })).toBeGreaterThanOrEqual(1);
    // The access rows of these requests (initialize, the refused get) wait for the store to open, as they do for room in an open one.
    await waitUntil('the access rows of the refused requests waiting, or lost', async () => {
      const value = await metrics();
      return value('ioboxx_access_log_rows_lost_total')! > 0 || value('ioboxx_access_log_rows_waiting')! >= 2;
    });
    expect((await metrics())('ioboxx_access_log_rows_lost_total'), 'access rows lost while the store could not open').toBe(0);
    expect(await alive()).toBe(true);
  }, 90_000);

  test('freed again, the same server opens the store: every acknowledged write is there with its value, no refused one is, the refused requests have their rows, and writes go on', async () => {
    rmSync(path.join(outside, 'ballast'));
    for (const a of acks) {
      const got = await client.callTool('object_get', { id: a.id });
      expect(got.structuredContent, `acknowledged ${a.id} at offset ${a.offset}`).toMatchObject({ id: a.id, attributes: { n: a.n, pad: 'x'.repeat(a.pad) } });
    }
    for (const r of refusals) expect(toolErrorOf(await client.callTool('object_get', { id: r.id }))?.code, `refused ${r.id}`).toBe('not_found');
    const refusedGets = async () => (await accessRows()).filter((r) => r.target === 'object_get' && r.outcome === 'unavailable');
    await waitUntil('the access row of the get refused while the store could not open', async () => (await refusedGets()).length > 0);
    expect((await refusedGets()).map((r) => r.object_ids)).toEqual([[acks[0]!.id]]);
    expect((await metrics())('ioboxx_access_log_rows_lost_total')).toBe(0);
    const after = await put('after-restart', 0, 0);
    expect(toolErrorOf(after)).toBeUndefined();
    expect((after.structuredContent as { offset: number }).offset).toBeGreaterThan(Math.max(...acks.slice(0, -1).map((a) => a.offset)));
    await waitUntil('the control plane started once there is room', async () => (await readiness()).status === 200, 45_000);
    expect(await alive()).toBe(true);
  }, 60_000);

  test('over stdio on the full disk too: a write is refused the same way, a read answers, and the server ends when its client does, saying which access rows it could not write', async () => {
    await client.close();
    expect(await server.stop()).toBe(0);
    const [command, ...args] = [...inNamespace(), process.execPath, serverBin, 'serve', '--stdio'];
    const stdio = spawn(command!, args, {
      cwd: repoRoot, env: { ...baseEnv(), IOBOXX_DATA_DIR: path.join(mount, 'data') }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let log = '';
    stdio.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    stdioServer = stdio;
    const exited = childExit(stdio).then((end): [number | null, string | null] => [end.code, end.signal]);
    client = await connectStreams('older', stdio.stdin!, stdio.stdout!);
    expect(toolErrorOf(await client.callTool('object_get', { id: acks[0]!.id }))).toBeUndefined(); // the store is open
    topUp('ballast');
    const refusedBefore = refusals.length;
    await fill('s');
    expectDiskFullRefusals(refusals.slice(refusedBefore));
    const last = acks.at(-1)!;
    expect((await client.callTool('object_get', { id: last.id })).structuredContent).toMatchObject({ id: last.id, attributes: { n: last.n } });
    // The end of stdin ends the server: the access rows the full disk still refuses are lost then, and logged (stdio has no /metrics).
    await client.close();
    expect(await exited).toEqual([0, null]);
    const lostRows = log.split('\n').filter((line) => line.includes('"access log append failed"')).map((line) => (JSON.parse(line) as { rows: number }).rows);
    expect(lostRows.reduce((sum, rows) => sum + rows, 0)).toBeGreaterThan(0);
  }, 60_000);
});
