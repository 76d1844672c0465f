/**
 * Server-level denials (auth refusals: their only record) queued while Postgres is away survive a
 * restart: they are in the live spool of the data dir (a shutdown adds what is still queued), the
 * next start stages them once Postgres answers, exactly once even when a crash left the staged
 * spool behind; a version 1 spool of an earlier version is staged too. A Postgres cluster of this
 * test's own (scripts/services/postgres.sh), stopped and started, so the shared one is never
 * disturbed.
 */
import { copyFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startControlRuntime, type ControlRuntime } from '../../server/control/control-runtime.js';
import { denialSpoolDir } from '../../server/control/denial-spool.js';
import type { Config } from '../../server/config.js';
import { serverAuditTenant } from '../../storage/control/audit-staging.js';
import { startOwnPostgres, type OwnPostgres } from '../support/services.js';
import { writeWholeDenialSpool } from '../support/whole-denial-spool.js';

let postgres: OwnPostgres;
let dir: string;
let databaseUrl: string;

beforeAll(async () => {
  postgres = await startOwnPostgres('denial-spool');
  ({ dir, databaseUrl } = postgres);
});

afterAll(() => postgres?.purge());

/** A runtime on `dataDir` whose log lines are kept; `waitFor(text)` resolves at the first line holding it. */
async function startRuntime(dataDir: string) {
  const lines: string[] = [];
  const waiters: Array<{ text: string; resolve: (line: string) => void }> = [];
  const log = pino({ level: 'info' }, {
    write: (line: string) => {
      lines.push(line);
      for (const w of waiters) if (line.includes(w.text)) w.resolve(line);
    },
  });
  const config = { dataDir, database: { url: databaseUrl }, auditRetentionDays: 1 } as unknown as Config;
  const runtime: ControlRuntime = await startControlRuntime({ config, log, withTenant: () => Promise.reject(new Error('no tenant work here')) });
  const waitFor = (text: string): Promise<string> => {
    const seen = lines.find((line) => line.includes(text));
    return seen !== undefined ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ text, resolve }));
  };
  return { runtime, lines, waitFor };
}

const denial = (tenant: string | null, target: string) => ({ tenant, atMs: Date.now(), subject: null, action: 'http', target, outcome: '401', reason: 'bad token' });

test('denials queued while Postgres is away are staged exactly once after a restart, even when the staged spool was left behind', async () => {
  const dataDir = join(dir, 'data');
  await postgres.down();

  // Postgres away: three refusals, then a shutdown.
  const first = await startRuntime(dataDir);
  first.runtime.auditDenial(denial(null, '/mcp'));
  first.runtime.auditDenial(denial('acme', '/mcp'));
  first.runtime.auditDenial(denial(null, '/sse'));
  await first.runtime.close();
  expect(first.lines.join('')).toContain('spooled, staged after the next start');
  const spools = await readdir(denialSpoolDir(dataDir));
  expect(spools).toHaveLength(1);
  const spoolFile = join(denialSpoolDir(dataDir), spools[0]!);
  expect(spoolFile.endsWith('.jsonl')).toBe(true);
  const leftBehind = join(dir, 'left-behind.jsonl');
  await copyFile(spoolFile, leftBehind);
  // A damaged spool beside it must not stop the start; a version 1 spool (an earlier version's shutdown) is staged too.
  const damaged = join(denialSpoolDir(dataDir), `${Date.now()}-00000000-0000-4000-8000-000000000000.json`);
  await writeFile(damaged, '{"format":"ioboxx-denial-spool","vers');
  await writeWholeDenialSpool(dataDir, [denial(null, '/v1')]);

  // Postgres back: the spools are staged once it answers, then removed.
  await postgres.up();
  const second = await startRuntime(dataDir);
  expect(await second.waitFor('unreadable: set aside')).toContain(damaged);
  await second.waitFor('"staged":1,');
  expect(await second.waitFor('"staged":3,')).toContain('spooled by an earlier process: staged');
  const plane = second.runtime.control!;
  const server = await plane.stagedAudit(serverAuditTenant, { limit: 10 });
  const acme = await plane.stagedAudit('acme', { limit: 10 });
  expect(server.map((e) => (e.event as { target: string }).target)).toEqual(['/mcp', '/sse', '/v1']);
  expect(acme.map((e) => (e.event as { target: string }).target)).toEqual(['/mcp']);
  expect(await readdir(denialSpoolDir(dataDir))).toEqual([`${damaged.split('/').pop()}.damaged`]);
  await second.runtime.close();

  // A crash between staging and removing the spool: the next start stages it again, adding nothing.
  await copyFile(leftBehind, spoolFile);
  const third = await startRuntime(dataDir);
  expect(await third.waitFor('spooled by an earlier process: staged')).toContain('"staged":0');
  expect(await third.runtime.control!.stagedAudit(serverAuditTenant, { limit: 10 })).toHaveLength(3);
  expect(await third.runtime.control!.stagedAudit('acme', { limit: 10 })).toHaveLength(1);
  await third.runtime.close();
});
