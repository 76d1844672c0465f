/**
 * `serve --http` after a restart: a tenant's access rows left unstaged at shutdown (Postgres
 * away) reach Postgres without any call of that tenant, because the shutdown marked the tenant
 * (control-pending) and the next start drains the marked tenants. Its own Postgres
 * (scripts/services/postgres.sh), stopped and started, so the shared one is never touched.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { controlPendingDirName } from '../../server/control/control-pending.js';
import { loadConfig } from '../../server/config.js';
import { silentLogger } from '../../server/log.js';
import { serveHttpProcess, type HttpProcess } from '../../server/main-wiring.js';
import { localTenantDefault } from '../../server/auth/local-principal.js';
import { openControlPlane } from '../../storage/control/control-plane.js';
import { connectNewerHttp, toolErrorOf } from '../support/mcp-clients.js';
import { startOwnPostgres, type OwnPostgres } from '../support/services.js';

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

const waitUntil = async (what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

test('access rows left unstaged at shutdown reach Postgres after an HTTP restart, with no call of that tenant', async () => {
  const dataDir = join(postgres.dir, 'data');
  const { databaseUrl } = postgres;
  const config = loadConfig({ IOBOXX_DATA_DIR: dataDir, IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'error', DATABASE_URL: databaseUrl });

  // Postgres away while the tenant works and the server stops: its access rows stay in its store.
  await postgres.down();
  const first = await serveHttpProcess(config, silentLogger());
  const client = await connectNewerHttp({ url: `${first.serving.url}/mcp` });
  expect(toolErrorOf(await client.callTool('object_put', { type: 'note', attributes: { title: 'before the restart' } }))).toBeUndefined();
  await client.close();
  await stop(first);
  expect(await readdir(join(dataDir, controlPendingDirName))).toEqual([localTenantDefault]);

  // Postgres back; the server restarts and nobody calls.
  await postgres.up();
  const second = await serveHttpProcess(config, silentLogger());
  const plane = await openControlPlane({ databaseUrl });
  try {
    await waitUntil('the access rows of before the restart staged', async () => (await plane.stagedAudit(localTenantDefault, { limit: 10 })).length > 0);
    await waitUntil('the control-pending mark removed', async () => (await readdir(join(dataDir, controlPendingDirName))).length === 0);
  } finally {
    await plane.close();
    await stop(second);
  }
});
