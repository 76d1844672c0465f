/**
 * DATABASE_URL pointing at the wrong place, as an operator gets it wrong: a URL that is no
 * Postgres URL is refused with the rest of the configuration; a Postgres that answers and
 * refuses the server (no such database, no such role, read-only) is logged as a refusal naming
 * what to do, not as Postgres being unreachable (real Postgres, scripts/services/up.sh).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, expect, test } from 'vitest';
import { loadConfig } from '../../server/config.js';
import type { Config } from '../../server/config.js';
import { startControlRuntime } from '../../server/control/control-runtime.js';
import { freshPostgresDatabase, postgresService } from '../support/services.js';

const cleanup: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

test('a DATABASE_URL or DATABASE_DIRECT_URL that is not a postgres:// URL is refused at start, naming the variable', () => {
  expect(() => loadConfig({ DATABASE_URL: 'http://db.example.com:5432/app' }, '/')).toThrow(/DATABASE_URL: .*postgres:\/\//);
  expect(() => loadConfig({ DATABASE_URL: 'postgres://db/app', DATABASE_DIRECT_URL: 'mysql://db/app' }, '/')).toThrow(/DATABASE_DIRECT_URL: .*postgres:\/\//);
  expect(loadConfig({ DATABASE_URL: 'postgresql://u:p@db.example.com:6543/postgres?sslmode=require' }, '/').database?.url).toMatch(/^postgresql:/);
});

/** The first line the control runtime logs about connecting to `url`, and (as `problem`) what /readyz says then. */
async function firstConnectLog(url: string): Promise<Record<string, unknown>> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-control-refusal-'));
  cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
  let logged: (entry: Record<string, unknown>) => void = () => undefined;
  const line = new Promise<Record<string, unknown>>((resolve) => (logged = resolve));
  const log = pino({ level: 'info' }, {
    write: (text: string) => {
      const entry = JSON.parse(text) as Record<string, unknown>;
      if (String(entry['msg']).startsWith('control plane')) logged(entry);
    },
  });
  const config = { dataDir, database: { url }, auditRetentionDays: 1 } as unknown as Config;
  const runtime = await startControlRuntime({ config, log, withTenant: async () => { throw new Error('no tenant here'); } });
  try {
    return { ...(await line), problem: runtime.connectProblem };
  } finally {
    await runtime.close();
  }
}

function withPath(pathname: string, user?: string): string {
  const url = new URL(postgresService().url);
  url.pathname = pathname;
  if (user !== undefined) url.username = user;
  return url.toString();
}

test('a database that does not exist, a role that does not exist, a read-only database: each logged as refused, with what to do', async () => {
  const missing = await firstConnectLog(withPath('/no_such_database_ioboxx'));
  expect(missing).toMatchObject({ level: 50, msg: expect.stringMatching(/refused/) });
  expect(String(missing['err'])).toMatch(/does not exist/);
  expect(String(missing['hint'])).toMatch(/create that database/);
  // What /readyz's postgres probe says while it is not connected: the cause and what to do, not only "not connected".
  expect(missing['problem']).toBe(`${String(missing['err'])} (${String(missing['hint'])})`);

  const role = await firstConnectLog(withPath(new URL(postgresService().url).pathname, 'no_such_role_ioboxx'));
  expect(role).toMatchObject({ level: 50, msg: expect.stringMatching(/refused/) });
  expect(String(role['hint'])).toMatch(/user and password/);

  const db = await freshPostgresDatabase('control_read_only');
  cleanup.push(db.drop);
  const name = new URL(db.url).pathname.slice(1);
  const admin = new pg.Client({ connectionString: postgresService().url });
  await admin.connect();
  try {
    await admin.query(`alter database ${name} set default_transaction_read_only = on`);
  } finally {
    await admin.end();
  }
  const readOnly = await firstConnectLog(db.url);
  expect(readOnly).toMatchObject({ level: 50, msg: expect.stringMatching(/refused/) });
  expect(String(readOnly['err'])).toMatch(/read-only/);
  expect(String(readOnly['hint'])).toMatch(/primary/);
});

test('a database another application uses (a table the control plane creates already there, unrecorded) is refused naming that', async () => {
  const db = await freshPostgresDatabase('control_foreign');
  cleanup.push(db.drop);
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    await admin.query('create table kc_event_landing (id int primary key)');
  } finally {
    await admin.end();
  }
  const foreign = await firstConnectLog(db.url);
  expect(foreign).toMatchObject({ level: 50, msg: expect.stringMatching(/refused/) });
  expect(String(foreign['err'])).toMatch(/already exists/);
  expect(String(foreign['hint'])).toMatch(/another application's database/);
});

test('Postgres not listening is still "unreachable" (a warning: it may come back)', async () => {
  const url = new URL(postgresService().url);
  url.port = '1';
  const away = await firstConnectLog(url.toString());
  expect(away).toMatchObject({ level: 40, msg: expect.stringMatching(/unreachable/) });
  expect(away['problem']).toBe(away['err']);
});
