/**
 * End to end: the real HTTP server (serveHttpProcess: the real memory module and tenant
 * registry) with a stores' memory budget of one byte (IOBOXX_STORES_MEMORY_BYTES_MAX) and a short
 * slot wait (IOBOXX_TENANT_SLOT_WAIT_MS). While one tenant's store is busy with calls, another
 * tenant's store cannot open: its open waits like a slot wait and the call is refused as a client
 * sees it, 429 + Retry-After with the tool errors' stable code and hint in `error.data`, and
 * counted where an operator looks for busy refusals, `busy_rejections_total{limit="store"}`.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { parsePrometheusText } from '../ops/prometheus-text.js';
import type { OidcIssuerProcess } from '../support/oidc-issuer.js';
import { startTokenHttpProcess, type TokenHttpProcess } from '../support/token-http-process.js';

const slotWaitMs = 20;
/** Calls of the busy tenant in flight at once: its store is never idle while they run. */
const busyCallsInFlight = 4;
/** Calls of the other tenant before the test gives up on seeing it refused. */
const refusalAttemptsMax = 200;

let running: TokenHttpProcess | undefined;
let idp: OidcIssuerProcess;
let base: string;

beforeAll(async () => {
  running = await startTokenHttpProcess({
    openTenantsMax: 8, // slots to spare: only the budget can refuse
    env: { IOBOXX_STORES_MEMORY_BYTES_MAX: '1', IOBOXX_TENANT_SLOT_WAIT_MS: String(slotWaitMs) },
  });
  ({ idp, base } = running);
}, 60_000);

afterAll(async () => {
  await running?.stop();
});

async function bearerFor(tenant: string): Promise<string> {
  return `Bearer ${await idp.token({ organizations: [tenant], realmRoles: ['memory-writer'], subject: `user-${tenant}` })}`;
}

/** The per-request envelope a 2026-era request carries (as the SDK 2.x client sends it). */
const envelope = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

/** One 2026-era tools/call over plain HTTP, so the status and headers of a refusal are seen as a client gets them. */
function call(authorization: string, name: string, args: Record<string, unknown>): Promise<Response> {
  return fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': name },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name, arguments: args, _meta: envelope } }),
    signal: AbortSignal.timeout(20_000),
  });
}

test("an open refused for the memory budget, held by another tenant's busy store, is a 429 with Retry-After and error.data {code: busy, hint}", async () => {
  const busy = await bearerFor('budget-busy');
  const other = await bearerFor('budget-other');
  // The busy tenant's store holds rows (an empty store is estimated at no bytes): it fills the budget.
  const first = await call(busy, 'object_put', { id: 'seed', type: 'note', attributes: { what: 'fills the budget' } });
  expect(first.status, await first.clone().text()).toBe(200);
  await first.text();

  let stop = false;
  const keepBusy = async (lane: number): Promise<void> => {
    for (let n = 0; !stop; n += 1) await (await call(busy, 'object_put', { id: `lane-${lane}`, type: 'note', attributes: { n } })).text();
  };
  const lanes = Array.from({ length: busyCallsInFlight }, (_, lane) => keepBusy(lane));
  let refused: Response | undefined;
  try {
    for (let attempt = 0; attempt < refusalAttemptsMax && refused === undefined; attempt += 1) {
      const answer = await call(other, 'object_get', { id: 'seed' });
      if (answer.status === 429) refused = answer;
      else await answer.text();
    }
  } finally {
    stop = true;
    await Promise.all(lanes);
  }
  expect(refused, `no call of the other tenant was refused in ${refusalAttemptsMax} tries`).toBeDefined();
  expect(refused!.headers.get('retry-after')).toMatch(/^[1-9]\d*$/);
  const { error } = (await refused!.json()) as { error: { message: string; data?: { code?: string; hint?: string } } };
  expect(error.message).toContain(`no room freed within ${slotWaitMs} ms in the open stores' memory budget`);
  expect(error.data).toEqual({ code: 'busy', hint: expect.stringContaining('IOBOXX_STORES_MEMORY_BYTES_MAX') });
  const families = parsePrometheusText(await (await fetch(`${base}/metrics`)).text());
  const counted = families.get('ioboxx_busy_rejections_total')?.samples.find((s) => s.labels['limit'] === 'store')?.value;
  expect(counted, 'the 429 is not in busy_rejections_total{limit="store"}').toBeGreaterThanOrEqual(1);
}, 60_000);
