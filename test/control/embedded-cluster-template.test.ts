/**
 * A new data dir's embedded database starts from the build's cluster template (no initdb), and
 * a template PGlite cannot load is passed over for a normal initialisation. Which one a cluster
 * came from shows in its system identifier: initdb draws a new one, a template carries its own.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { clusterTemplateFile } from '../../storage/control/embedded-cluster-template.js';
import { startEmbeddedPostgres } from '../../storage/control/embedded-postgres.js';

/** The cluster's system identifier, after adding one row to table t; and how many rows t then holds. */
async function openCluster(dataDir: string, options: { clusterTemplateFile?: string } = {}): Promise<{ id: string; rows: number }> {
  const embedded = await startEmbeddedPostgres(dataDir, options);
  try {
    const client = new pg.Client({ connectionString: embedded.url });
    await client.connect();
    try {
      await client.query('create table if not exists t (x int)');
      await client.query('insert into t values (1)');
      const { rows } = await client.query<{ id: string }>('select system_identifier::text as id from pg_control_system()');
      const count = await client.query<{ n: number }>('select count(*)::int as n from t');
      return { id: rows[0]!.id, rows: count.rows[0]!.n };
    } finally {
      await client.end();
    }
  } finally {
    await embedded.close();
  }
}

describe('embedded database cluster template', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ioboxx-cluster-template-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the build wrote a template, and two new data dirs both start from it', async () => {
    const file = await clusterTemplateFile();
    expect(file, 'npm run build writes dist/pglite-cluster-VERSION.tgz').toBeDefined();
    const first = await openCluster(join(dir, 'a'));
    const second = await openCluster(join(dir, 'b'));
    expect(first.id).toMatch(/^\d+$/);
    expect(second).toEqual({ id: first.id, rows: 1 });
    // Reopened, a cluster keeps its data and identity (the template is for new dirs only).
    expect(await openCluster(join(dir, 'a'))).toEqual({ id: first.id, rows: 2 });
  });

  test('a template that does not load is passed over: the cluster is initialised instead', async () => {
    const fromTemplate = await openCluster(join(dir, 'c'));
    const damaged = join(dir, 'damaged.tgz');
    await writeFile(damaged, Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.alloc(4096, 0x5a)]));
    const initialised = await openCluster(join(dir, 'd'), { clusterTemplateFile: damaged });
    expect(initialised.id).toMatch(/^\d+$/);
    expect(initialised.rows).toBe(1);
    expect(initialised.id).not.toBe(fromTemplate.id);
  });
});
