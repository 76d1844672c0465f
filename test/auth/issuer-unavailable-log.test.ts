/**
 * The real HTTP process trusting an issuer it cannot use: callers get 503 (the token may well
 * be valid), and the operator's log says why, once per attempt at the issuer, not per request.
 */
import { afterEach, expect, test } from 'vitest';
import { pino } from 'pino';
import { startTokenHttpProcess, type TokenHttpProcess } from '../support/token-http-process.js';

let running: TokenHttpProcess | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

interface LogLine { readonly level: number; readonly msg: string; readonly problem?: string }

async function serverLoggingTo(lines: LogLine[], env?: (issuer: string) => Record<string, string>): Promise<TokenHttpProcess> {
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return startTokenHttpProcess({ openTenantsMax: 2, log, ...(env && { env: (idp) => env(idp.issuer()) }) });
}

async function toolsList(base: string, token: string): Promise<number> {
  const response = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
  });
  await response.body?.cancel();
  return response.status;
}

const issuerWarnings = (lines: readonly LogLine[]) => lines.filter((line) => line.level === 40 && line.msg.startsWith('OIDC issuer unavailable'));

test('an issuer whose discovery names another issuer (a trailing slash in IOBOXX_OIDC_ISSUER) is logged, not only answered 503', async () => {
  const lines: LogLine[] = [];
  running = await serverLoggingTo(lines, (issuer) => ({ IOBOXX_OIDC_ISSUER: `${issuer}/` }));
  const token = await running.idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'] });
  for (let i = 0; i < 3; i++) expect(await toolsList(running.base, token)).toBe(503);
  const warnings = issuerWarnings(lines);
  expect(warnings).toHaveLength(1); // discovery is retried after discoveryRetryMs, not per request
  expect(warnings[0]!.problem).toContain(`names issuer ${running.idp.issuer()}, expected ${running.idp.issuer()}/`);
  expect(JSON.stringify(lines)).not.toContain(token);
});

test("an issuer whose keys cannot be fetched is logged with the key set's URL and what it answered", async () => {
  const lines: LogLine[] = [];
  running = await serverLoggingTo(lines);
  await running.idp.jwksStatus(503);
  const token = await running.idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'] });
  for (let i = 0; i < 3; i++) expect(await toolsList(running.base, token)).toBe(503);
  const warnings = issuerWarnings(lines);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]!.problem).toContain(`${running.idp.issuer()}/protocol/openid-connect/certs`);
  expect(warnings[0]!.problem).toContain('200 OK');
});
