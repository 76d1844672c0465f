/**
 * A control-plane client whose connection is lost while lent (the backend terminated, a pooler's
 * server gone) must not end the process: the pool listens for errors only on idle clients, and a
 * lent one's 'error' event, unheard, is an uncaught exception (it took the server down behind
 * PgBouncer when Postgres stopped). Real Postgres: the backend is terminated from a second connection.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import pg from 'pg';
import { inTransaction } from '../../storage/control/control-plane.js';
import { freshPostgresDatabase } from '../support/services.js';

let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
let pool: pg.Pool;
let admin: pg.Client;

beforeAll(async () => {
  db = await freshPostgresDatabase('lost_connection');
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
  pool.on('error', () => undefined);
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
});

afterAll(async () => {
  await admin?.end();
  await pool?.end();
  await db?.drop();
});

test('a transaction whose backend is terminated between its queries fails, the process goes on, and the pool serves the next one', async () => {
  const transaction = inTransaction(pool, async (client) => {
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
    // No query in flight while the server's goodbye arrives: pg emits it as the client's 'error' event.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await client.query('select 1');
  });
  await expect(transaction).rejects.toThrow();
  const next = await inTransaction(pool, (client) => client.query<{ one: number }>('select 1 as one'));
  expect(next.rows[0]!.one).toBe(1);
});
