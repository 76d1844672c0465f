/**
 * A request authentication refuses is one event of the server's audit chain (`_server` in
 * staging), not two: authentication records its refusals with the reason, and the HTTP
 * refusal audit (server/http/refusal-audit.ts), which sees every refused MCP request's
 * response, must leave those to it. The real built server trusting the test OIDC issuer, with a
 * fresh database on the test Postgres. `npm run build` must have run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { serverAuditTenant } from '../../storage/control/audit-staging.js';
import { openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { startOidcIssuer, testAudience, type OidcIssuerProcess } from '../support/oidc-issuer.js';
import { freshPostgresDatabase, type FreshDatabase } from '../support/services.js';
import { waitUntil } from '../support/wait-until.js';
import { startHttpServer, type ServerProcess } from './server-process.js';

let idp: OidcIssuerProcess;
let db: FreshDatabase;
let dataDir: string;
let server: ServerProcess;
let control: ControlPlane;
beforeAll(async () => {
  idp = await startOidcIssuer();
  db = await freshPostgresDatabase('auth_refusal_audit');
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-auth-refusal-audit-'));
  server = await startHttpServer({
    IOBOXX_OIDC_ISSUER: idp.issuer(), IOBOXX_OIDC_AUDIENCE: testAudience, IOBOXX_OIDC_ALLOW_HTTP: '1',
    IOBOXX_DATA_DIR: dataDir, DATABASE_URL: db.url,
  });
  control = await openControlPlane({ databaseUrl: db.url });
}, 120_000);
afterAll(async () => {
  await control?.close();
  await server?.stop();
  await idp?.stop();
  await db?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function ping(pathName: string, headers: Record<string, string>): Promise<number> {
  const response = await fetch(`${server.url}${pathName}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
  });
  await response.arrayBuffer();
  return response.status;
}

type Staged = { target: string; outcome: string; reason?: string };

test('each request authentication refuses (400, 403, 401) is one event of the server\'s chain, with its reason', async () => {
  const alice = await idp.token({ organizations: ['acme', 'globex'], realmRoles: ['memory-writer'] });
  // Refused by authentication after the token verified: a tenant selection that names no tenant, one she is not in.
  expect(await ping('/mcp', { authorization: `Bearer ${alice}`, 'x-ioboxx-tenant': '../acme' })).toBe(400);
  expect(await ping('/mcp', { authorization: `Bearer ${alice}`, 'x-ioboxx-tenant': 'initech' })).toBe(403);
  expect(await ping('/t/initech/mcp', { authorization: `Bearer ${alice}` })).toBe(403);
  // The last one marks the end: every event of the requests before it is staged before its own.
  expect(await ping('/mcp', { authorization: 'Bearer not-a-jwt' })).toBe(401);

  let staged: Staged[] = [];
  await waitUntil('the refusals staged', async () => {
    staged = (await control.stagedAudit(serverAuditTenant, { limit: 100 })).map((e) => e.event as Staged);
    return staged.some((e) => e.outcome === '401');
  });
  expect(staged.map((e) => e.outcome), JSON.stringify(staged)).toEqual(['400', '403', '403', '401']);
  for (const e of staged) expect(e.reason, JSON.stringify(e)).toMatch(/\w/);
  expect(staged.map((e) => e.target)).toEqual(['/mcp', '/mcp', '/t/initech/mcp', '/mcp']);
}, 120_000);
