/**
 * End to end: the real built server (`node bin/ioboxx-memory.js serve --http`), trusting the test
 * OIDC issuer, with Postgres unreachable (DATABASE_URL at a closed port). Requests with bad bearer
 * tokens are refused 401 before any tenant is known: server-level denials, whose only record is
 * the server's audit. Within denialSpoolSyncDelayMs they are durable in the live spool, so a
 * SIGKILL (no shutdown path runs) loses none: the next start, Postgres reachable, stages each
 * exactly once under `_server` and removes the spool. `npm run build` must have run.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, onTestFinished, test } from 'vitest';
import { denialSpoolDir } from '../../server/control/denial-spool.js';
import { decodeDenialSpoolLines } from '../../server/control/denial-spool-format.js';
import { denialSpoolSyncDelayMs } from '../../server/control/server-denials.js';
import { serverAuditSpoolSource, serverAuditTenant } from '../../storage/control/audit-staging.js';
import { openControlPlane } from '../../storage/control/control-plane.js';
import { startOidcIssuer, testAudience, type OidcIssuerProcess } from '../support/oidc-issuer.js';
import { freePort, freshPostgresDatabase, type FreshDatabase } from '../support/services.js';
import { waitUntil } from '../support/wait-until.js';
import { baseEnv, repoRoot, serverBin, startHttpServer } from './server-process.js';
import { childExit } from '../support/child-exit.js';

/** How long the denials may take to reach the live spool on a busy test machine: the bound, and slack for its fdatasync. */
const spooledWaitMs = denialSpoolSyncDelayMs + 10_000;

let idp: OidcIssuerProcess;
let db: FreshDatabase;
beforeAll(async () => {
  idp = await startOidcIssuer();
  db = await freshPostgresDatabase('denial_sigkill');
}, 120_000);
afterAll(async () => {
  await idp?.stop();
  await db?.drop();
});

/**
 * The built server with Postgres unreachable, once it listens (it never logs `control plane
 * ready`, which startHttpServer waits for): its URL, and a SIGKILL that resolves with the signal.
 */
async function serveWithoutPostgres(env: Record<string, string>) {
  const child = spawn(process.execPath, [serverBin, 'serve', '--http'], {
    cwd: repoRoot,
    env: { ...baseEnv(), IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  onTestFinished(() => void child.kill('SIGKILL')); // a no-op once it has exited
  const exited = childExit(child).then((end) => end.signal);
  let log = '';
  const url = await new Promise<string>((listening, failed) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      log += `${line}\n`;
      if (line.includes('"msg":"http server listening"')) listening((JSON.parse(line) as { url: string }).url);
    });
    void exited.then(() => failed(new Error(`serve --http ended before listening:\n${log}`)));
  });
  return { url, kill: () => (child.kill('SIGKILL'), exited) };
}

/** The denials in the live spools of `dataDir`, by spool id. */
async function spooled(dataDir: string): Promise<Map<string, string[]>> {
  const dir = denialSpoolDir(dataDir);
  const names = (await readdir(dir).catch((): string[] => [])).filter((name) => name.endsWith('.jsonl'));
  const spools = new Map<string, string[]>();
  for (const name of names) {
    // A spool staged meanwhile is removed by the server between the listing and this read: gone, it holds nothing.
    const bytes = await readFile(path.join(dir, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (bytes === undefined) continue;
    const denials = decodeDenialSpoolLines(bytes);
    spools.set(name.slice(0, -'.jsonl'.length), denials.map((d) => `${d.target} ${d.outcome}`));
  }
  return spools;
}

test('denials of bad tokens while Postgres is away survive a SIGKILL: the next start stages each exactly once under _server', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-denial-sigkill-'));
  const auth = { IOBOXX_OIDC_ISSUER: idp.issuer(), IOBOXX_OIDC_AUDIENCE: testAudience, IOBOXX_OIDC_ALLOW_HTTP: '1' };
  const unreachable = `postgres://ioboxx@127.0.0.1:${await freePort()}/ioboxx`;
  const first = await serveWithoutPostgres({ ...auth, IOBOXX_DATA_DIR: dataDir, DATABASE_URL: unreachable });

  const badTokens = [
    'not-a-jwt',
    await idp.token({ organizations: ['acme'], realmRoles: ['memory-writer'], unpublishedKey: true }),
    await idp.token({ organizations: ['acme'], realmRoles: ['memory-writer'], audience: 'someone-else' }),
    await idp.token({ organizations: ['acme'], realmRoles: ['memory-writer'], alg: 'none' }),
    'x.y.z',
  ];
  for (const token of badTokens) {
    const response = await fetch(`${first.url}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(response.status, `token ${token.slice(0, 20)}… refused`).toBe(401);
  }
  const expected = badTokens.map(() => '/mcp 401');

  // No shutdown will run: the denials must be on disk before the kill, within the bound.
  await waitUntil(`the ${badTokens.length} denials durable in the live spool`, async () => [...(await spooled(dataDir)).values()].flat().length === badTokens.length, spooledWaitMs);
  const before = await spooled(dataDir);
  expect([...before.values()]).toEqual([expected]);
  const [spoolId] = [...before.keys()];
  expect(await first.kill()).toBe('SIGKILL');

  // Postgres reachable: the killed process's spool is staged once it answers, then removed.
  const second = await startHttpServer({ ...auth, IOBOXX_DATA_DIR: dataDir, DATABASE_URL: db.url });
  const control = await openControlPlane({ databaseUrl: db.url });
  try {
    await waitUntil('the live spool staged and removed', async () => (await spooled(dataDir)).size === 0 && (await control.stagedAudit(serverAuditTenant, { limit: 100 })).length > 0);
    const staged = await control.stagedAudit(serverAuditTenant, { limit: 100 });
    expect(staged.map((e) => `${(e.event as { target: string }).target} ${(e.event as { outcome: string }).outcome}`), 'every denial staged exactly once').toEqual(expected);
    expect(new Set(staged.map((e) => e.source))).toEqual(new Set([serverAuditSpoolSource(spoolId!)]));
    expect(await readdir(denialSpoolDir(dataDir))).toEqual([]);
  } finally {
    await control.close();
    await second.stop();
  }
}, 180_000);
