/**
 * `serve --http` after a restart: a tenant's access rows left unstaged at shutdown or at a crash
 * (Postgres away) reach Postgres without any call of that tenant, because the tenant was marked
 * (control-pending) and the next start drains the marked tenants. Its own Postgres
 * (scripts/services/postgres.sh), stopped and started, so the shared one is never touched.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, onTestFinished, test } from 'vitest';
import { pino } from 'pino';
import { controlPendingDirName, markControlPending } from '../../server/control/control-pending.js';
import { workRetryMs } from '../../server/control/control-runtime.js';
import { recordKnownTenant } from '../../server/tenants/known-tenants.js';
import { loadConfig } from '../../server/config.js';
import { silentLogger } from '../../server/log.js';
import { serveHttpProcess, type HttpProcess } from '../../server/main-wiring.js';
import { localTenantDefault } from '../../server/auth/local-principal.js';
import { openControlPlane } from '../../storage/control/control-plane.js';
import { connectNewerHttp, toolErrorOf } from '../support/mcp-clients.js';
import { startOwnPostgres, type OwnPostgres } from '../support/services.js';
import { waitUntil } from '../support/wait-until.js';
import { childExit } from '../support/child-exit.js';
import { cliNodeArgs } from '../support/cli-entry.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
let postgres: OwnPostgres;

beforeAll(async () => {
  postgres = await startOwnPostgres('control-pending');
});

afterAll(() => postgres?.purge());

async function stop(server: HttpProcess): Promise<void> {
  server.stopAccepting();
  await server.drained();
  await server.close();
}

function httpConfig(dataDir: string) {
  return loadConfig({ IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'error', DATABASE_URL: postgres.databaseUrl });
}

/** Postgres back, the server restarts and nobody calls: the tenant's access rows reach Postgres, its mark goes. */
async function expectDrainedAfterRestart(dataDir: string): Promise<void> {
  await postgres.up();
  const second = await serveHttpProcess(httpConfig(dataDir), silentLogger());
  const plane = await openControlPlane({ databaseUrl: postgres.databaseUrl });
  try {
    await waitUntil('the access rows of before the restart staged', async () => (await plane.stagedAudit(localTenantDefault, { limit: 10 })).length > 0);
    await waitUntil('the control-pending mark removed', async () => (await readdir(join(dataDir, controlPendingDirName))).length === 0);
  } finally {
    await plane.close();
    await stop(second);
  }
}

test('access rows left unstaged at shutdown reach Postgres after an HTTP restart, with no call of that tenant', async () => {
  const dataDir = join(postgres.dir, 'data');

  // Postgres away while the tenant works and the server stops: its access rows stay in its store.
  await postgres.down();
  const first = await serveHttpProcess(httpConfig(dataDir), silentLogger());
  const client = await connectNewerHttp({ url: `${first.serving.url}/mcp` });
  expect(toolErrorOf(await client.callTool('object_put', { type: 'note', attributes: { title: 'before the restart' } }))).toBeUndefined();
  await client.close();
  await stop(first);
  expect(await readdir(join(dataDir, controlPendingDirName))).toEqual([localTenantDefault]);

  await expectDrainedAfterRestart(dataDir);
});

/** `serve --http` as a child process (SIGKILL-able), once it listens: its base URL. */
async function httpChild(env: Record<string, string>) {
  const child = spawn(process.execPath, [...cliNodeArgs, 'serve', '--http'], {
    cwd: root,
    env: { ...process.env, IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'info', ...env },
  });
  onTestFinished(() => void child.kill('SIGKILL')); // a no-op once it has exited
  child.stdout.resume();
  const exited = childExit(child).then((end) => end.signal);
  const url = await new Promise<string>((listening, failed) => {
    let lines = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      lines += chunk;
      const served = /"url":"([^"]+)"[^\n]*serving MCP over HTTP/.exec(lines);
      if (served) listening(served[1]!);
    });
    void exited.then(() => failed(new Error(`serve --http ended before listening: ${lines}`)));
  });
  return { child, url, exited };
}

// The tenant is marked while it works, drained or not (Postgres away, or up and the drain not run
// yet): a crash between its access rows reaching its store and their staging strands nothing.
test.each([['away', 'data-crash'], ['up', 'data-crash-up']] as const)('access rows of calls answered while Postgres is %s reach it after a SIGKILL and an HTTP restart, with no call of that tenant', async (postgresState, dataDirName) => {
  const dataDir = join(postgres.dir, dataDirName);
  await (postgresState === 'away' ? postgres.down() : postgres.up());
  const first = await httpChild({ IOBOXX_DATA_DIR: dataDir, DATABASE_URL: postgres.databaseUrl });
  const client = await connectNewerHttp({ url: `${first.url}/mcp` });
  expect(toolErrorOf(await client.callTool('object_put', { type: 'note', attributes: { title: 'before the crash' } }))).toBeUndefined();
  await client.close();
  await waitUntil('the tenant marked with control-plane work waiting, before any shutdown',
    async () => (await readdir(join(dataDir, controlPendingDirName)).catch((): string[] => [])).includes(localTenantDefault));
  first.child.kill('SIGKILL'); // no shutdown runs
  expect(await first.exited).toBe('SIGKILL');

  await expectDrainedAfterRestart(dataDir);
}, 60_000);

// The start drain retried a vanished store every second until an operator restored or retired it.
test('a marked tenant whose store vanished is tried once at start, logged once with the hint, and stays marked', async () => {
  const dataDir = join(postgres.dir, 'data-vanished');
  await recordKnownTenant(dataDir, 'gone'); // known, its directory never made: vanished
  await markControlPending(dataDir, 'gone');
  await postgres.up();
  const lines: Array<{ msg: string; tenant?: string; job?: string; hint?: string }> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const server = await serveHttpProcess(httpConfig(dataDir), log);
  try {
    const givenUp = () => lines.filter((l) => l.tenant === 'gone' && l.msg.includes('given up'));
    await waitUntil('the vanished tenant\'s drain given up', async () => givenUp().length > 0);
    await new Promise((resolve) => setTimeout(resolve, 3 * workRetryMs)); // the retries, if any, would land here
    expect(givenUp(), 'logged once').toHaveLength(1);
    expect(givenUp()[0]!.hint).toContain('ioboxx-memory restore');
    expect(lines.filter((l) => l.job === 'tenant gone'), 'retried after the refusal').toEqual([]);
    expect(await readdir(join(dataDir, controlPendingDirName)), 'the mark is kept for a start after the restore').toEqual(['gone']);
  } finally {
    await stop(server);
  }
});
