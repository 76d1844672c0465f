/**
 * Migrations against real Postgres (scripts/services/up.sh): applying them again applies
 * nothing, and a database a newer server has migrated (a version this server does not know) is
 * refused with a message naming both versions, never used with a schema this server cannot read.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import pg from 'pg';
import { applyMigrations, migrations } from '../../storage/control/migrations.js';
import { openControlPlane } from '../../storage/control/control-plane.js';
import { MemoryError } from '../../storage/errors.js';
import { freshPostgresDatabase } from '../support/services.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startControlRuntime } from '../../server/control/control-runtime.js';
import type { Config } from '../../server/config.js';

let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
beforeAll(async () => {
  db = await freshPostgresDatabase('control_migrations_version');
});
afterAll(async () => {
  await db?.drop();
});

const latest = Math.max(...migrations.map((m) => m.version));

test('migrations are idempotent; a database migrated by a newer server is refused naming both versions and what to do', async () => {
  expect(await applyMigrations(db.url)).toEqual(migrations.map((m) => m.version));
  expect(await applyMigrations(db.url)).toEqual([]);

  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  try {
    await admin.query('insert into control_migrations (version, name) values ($1, $2)', [latest + 1, 'from a newer server']);
  } finally {
    await admin.end();
  }
  const refusal = await applyMigrations(db.url).then(() => undefined, (error: unknown) => error);
  expect(refusal).toBeInstanceOf(MemoryError);
  expect((refusal as MemoryError).code).toBe('conflict');
  expect((refusal as MemoryError).message).toContain(`version ${latest + 1}`);
  expect((refusal as MemoryError).message).toContain(`knows up to ${latest}`);
  expect((refusal as MemoryError).hint).toMatch(/newer/);
  await expect(openControlPlane({ databaseUrl: db.url })).rejects.toThrow(/newer server/);
});

test('the server started on that database logs the refusal as such, with what to do (not as Postgres being unreachable)', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'ioboxx-control-newer-'));
  const lines: Array<Record<string, unknown>> = [];
  let logged: () => void = () => undefined;
  const refusalLogged = new Promise<void>((resolve) => (logged = resolve));
  const log = pino({ level: 'info' }, {
    write: (line: string) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      lines.push(entry);
      if (String(entry['err']).includes('newer server')) logged();
    },
  });
  const config = { dataDir, database: { url: db.url }, auditRetentionDays: 1 } as unknown as Config;
  const runtime = await startControlRuntime({ config, log, withTenant: async () => { throw new Error('no tenant here'); } });
  try {
    await refusalLogged;
    const refusal = lines.find((l) => String(l['err']).includes('newer server'))!;
    expect(refusal['level']).toBe(50);
    expect(String(refusal['msg'])).not.toMatch(/unreachable/);
    expect(String(refusal['hint'])).toMatch(/newer ioboxx-memory version/);
  } finally {
    await runtime.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
