/**
 * authenticateRequest and the Protected Resource Metadata documents behind a real node:http
 * server on 127.0.0.1, with tokens from the real test issuer process. Requests are sent with
 * node:http (not fetch) so raw paths like /t/%2e%2e/mcp and duplicate headers reach the server
 * exactly as written.
 */
import { once } from 'node:events';
import { createServer, request, type OutgoingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createAuthenticator } from '../../server/auth/authenticator.js';
import { authenticateRequest, sendAuthFailure, type HttpAuthOptions } from '../../server/auth/http-auth.js';
import { serveProtectedResourceMetadata } from '../../server/auth/protected-resource-metadata.js';
import { authConfigForIssuer, startOidcIssuer, type OidcIssuerProcess } from '../support/oidc-issuer.js';

let idp: OidcIssuerProcess;
let server: Server;
let base: string;
let port: number;

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, unknown>;
  readonly text: string;
}

function send(path: string, headers: Record<string, string | string[]> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: headers as OutgoingHttpHeaders }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Bytes on a socket, for request targets node:http's client refuses to send. */
async function sendRaw(head: string): Promise<number> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  // write, not end: a half-closed client may see its connection dropped before the answer.
  socket.write(Buffer.from(head, 'utf8'));
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(Buffer.concat(chunks).toString('latin1'))?.[1]);
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

beforeAll(async () => {
  idp = await startOidcIssuer();
  const authenticator = createAuthenticator(authConfigForIssuer(idp));
  server = createServer((req, res) => {
    if (serveProtectedResourceMetadata(req, res, options.resource)) return;
    authenticateRequest(req, options).then(
      (result) => {
        if (!result.ok) return sendAuthFailure(res, result.failure);
        const { caller, capabilities, via } = result.principal;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ caller, capabilities: [...capabilities].sort(), via }));
      },
      () => res.writeHead(500).end(),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as { port: number }).port;
  base = `http://127.0.0.1:${port}`;
  const options: HttpAuthOptions = {
    authenticator,
    resource: { publicBaseUrl: base, authorizationServers: [idp.issuer()] },
  };
});

afterAll(async () => {
  server?.close();
  await idp?.stop();
});

const reader = (organizations: readonly string[] | Record<string, { id: string }>) =>
  idp.token({ organizations, realmRoles: ['memory-reader'], subject: 'user-1', username: 'ada' });

describe('HTTP bearer authentication', () => {
  test('a valid single-organization token on /mcp yields its principal', async () => {
    const reply = await send('/mcp', bearer(await reader(['acme'])));
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({
      caller: { tenant: 'acme', subject: 'user-1', name: 'ada' },
      capabilities: ['read'],
      via: 'token',
    });
    expect((reply.body.caller as { roles: string[] }).roles).toContain('memory-reader');
  });

  test('the object shape of the organization claim names the tenant by alias', async () => {
    const reply = await send('/mcp', bearer(await reader({ acme: { id: '0b6a9c1e-1' } })));
    expect(reply.status).toBe(200);
    expect((reply.body.caller as { tenant: string }).tenant).toBe('acme');
  });

  test('no credentials: 401 with the path-specific resource_metadata and no error code', async () => {
    const reply = await send('/mcp');
    expect(reply.status).toBe(401);
    const challenge = reply.headers['www-authenticate'] as string;
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`);
    expect(challenge).not.toContain('error=');
  });

  test('an invalid token: 401 invalid_token with resource_metadata', async () => {
    const reply = await send('/t/acme/mcp', bearer(await idp.token({ organizations: ['acme'], ttlS: -60 })));
    expect(reply.status).toBe(401);
    const challenge = reply.headers['www-authenticate'] as string;
    expect(challenge).toContain('error="invalid_token"');
    expect(challenge).toContain(`resource_metadata="${base}/.well-known/oauth-protected-resource/t/acme/mcp"`);
    expect(reply.body.error).toBe('invalid_token');
  });

  test('a non-Bearer scheme is treated as no credentials', async () => {
    const reply = await send('/mcp', { authorization: 'Basic dXNlcjpwYXNz' });
    expect(reply.status).toBe(401);
    expect(reply.headers['www-authenticate']).not.toContain('error=');
  });

  test('a token in the query string is refused with 400 and never used', async () => {
    const token = await reader(['acme']);
    const alone = await send(`/mcp?access_token=${token}`);
    expect(alone.status).toBe(400);
    expect(alone.body.error).toBe('invalid_request');
    // Even beside a valid header: the request is malformed, not authenticated.
    const beside = await send(`/mcp?x=1&ACCESS_TOKEN=${token}`, bearer(token));
    expect(beside.status).toBe(400);
    expect(beside.text).not.toContain(token);
  });

  test('two Authorization headers are a 400', async () => {
    const token = await reader(['acme']);
    const reply = await send('/mcp', { authorization: [`Bearer ${token}`, `Bearer ${token}`] });
    expect(reply.status).toBe(400);
    expect(reply.headers['www-authenticate']).toContain('error="invalid_request"');
  });

  test('malformed Bearer credentials are a 400', async () => {
    const reply = await send('/mcp', { authorization: 'Bearer a b' });
    expect(reply.status).toBe(400);
  });

  test("org A's token on org B's path or header: 403 insufficient_scope", async () => {
    const token = await reader(['acme']);
    const byPath = await send('/t/globex/mcp', bearer(token));
    const byHeader = await send('/mcp', { ...bearer(token), 'x-ioboxx-tenant': 'globex' });
    for (const reply of [byPath, byHeader]) {
      expect(reply.status).toBe(403);
      expect(reply.headers['www-authenticate']).toContain('error="insufficient_scope"');
    }
    expect(byPath.headers['www-authenticate']).toContain(`resource_metadata="${base}/.well-known/oauth-protected-resource/t/globex/mcp"`);
  });

  test('a multi-organization token must select a tenant it is a member of', async () => {
    const token = await reader(['acme', 'globex']);
    expect((await send('/mcp', bearer(token))).status).toBe(400);
    const byPath = await send('/t/globex/mcp', bearer(token));
    expect(byPath.status).toBe(200);
    expect((byPath.body.caller as { tenant: string }).tenant).toBe('globex');
    const byHeader = await send('/mcp', { ...bearer(token), 'x-ioboxx-tenant': 'acme' });
    expect((byHeader.body.caller as { tenant: string }).tenant).toBe('acme');
    expect((await send('/t/globex/mcp', { ...bearer(token), 'x-ioboxx-tenant': 'acme' })).status).toBe(400);
    expect((await send('/t/initech/mcp', bearer(token))).status).toBe(403);
  });

  test('malformed tenant ids are a 400 before anything uses them', async () => {
    const token = await reader(['acme', 'globex']);
    const long = 'a'.repeat(200);
    const paths = ['/t/%2e%2e/mcp', '/t/..%2Fx/mcp', '/t/A/mcp', '/t/ACME/mcp', `/t/${long}/mcp`, '/t/%E7%A7%9F%E6%88%B7/mcp', '/t//mcp', '/t/acme.x/mcp'];
    for (const path of paths) {
      const reply = await send(path, bearer(token));
      expect(reply.status, path).toBe(400);
      expect(reply.headers['www-authenticate'], path).toContain(`resource_metadata="${base}/.well-known/oauth-protected-resource"`);
    }
    for (const tenant of ['../x', '%2e%2e', 'A', long, 'tenänt', 'acme,globex', '']) {
      const reply = await send('/mcp', { ...bearer(token), 'x-ioboxx-tenant': tenant });
      expect(reply.status, tenant).toBe(400);
    }
    expect((await send('/mcp', { ...bearer(token), 'x-ioboxx-tenant': ['acme', 'acme'] })).status).toBe(400);
  });

  test('dot segments and raw unicode in the request target are refused, not folded', async () => {
    const token = await reader(['acme']);
    expect(await sendRaw(`GET /t/../acme/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)).toBe(400);
    expect(await sendRaw(`GET /t/租户/mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)).toBe(400);
  });

  test('a token naming no organization is a 403', async () => {
    const reply = await send('/mcp', bearer(await idp.token({ realmRoles: ['memory-reader'] })));
    expect(reply.status).toBe(403);
  });

  test('a token whose roles grant no capability is a 403', async () => {
    const reply = await send('/mcp', bearer(await idp.token({ organizations: ['acme'] })));
    expect(reply.status).toBe(403);
    expect(reply.headers['www-authenticate']).toContain('error="insufficient_scope"');
  });

  test('an unreachable issuer is a 503 with Retry-After, not a 401', async () => {
    const authenticator = createAuthenticator(authConfigForIssuer(idp, { realm: 'no-such-realm' }));
    const local = createServer((req, res) => {
      void authenticateRequest(req, { authenticator, resource: { publicBaseUrl: base, authorizationServers: [] } }).then((result) => {
        if (!result.ok) sendAuthFailure(res, result.failure);
        else res.writeHead(200).end();
      });
    });
    local.listen(0, '127.0.0.1');
    await once(local, 'listening');
    const token = await reader(['acme']);
    const reply = await fetch(`http://127.0.0.1:${(local.address() as { port: number }).port}/mcp`, { headers: bearer(token) });
    local.close();
    expect(reply.status).toBe(503);
    expect(reply.headers.get('retry-after')).not.toBeNull();
  });
});

describe('Protected Resource Metadata (RFC 9728)', () => {
  test('the root document names the issuer as authorization server', async () => {
    const reply = await send('/.well-known/oauth-protected-resource');
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({
      resource: `${base}/`,
      authorization_servers: [idp.issuer()],
      bearer_methods_supported: ['header'],
    });
    expect(reply.body.scopes_supported).toContain('organization');
    expect(reply.headers['access-control-allow-origin']).toBe('*');
  });

  test('each path-specific document names exactly the resource it was derived from', async () => {
    for (const resource of ['/mcp', '/t/acme/mcp']) {
      const reply = await send(`/.well-known/oauth-protected-resource${resource}`);
      expect(reply.status, resource).toBe(200);
      expect(reply.body.resource).toBe(`${base}${resource}`);
    }
  });

  test('the metadata URL a 401 names serves a document for that resource', async () => {
    const challenge = (await send('/t/acme/mcp')).headers['www-authenticate'] as string;
    const metadataUrl = /resource_metadata="([^"]+)"/.exec(challenge)?.[1] as string;
    const document = (await (await fetch(metadataUrl)).json()) as { resource: string };
    expect(document.resource).toBe(`${base}/t/acme/mcp`);
  });

  test('no document for malformed tenants or unknown resources', async () => {
    for (const path of ['/t/%2e%2e/mcp', '/t/A/mcp', '/other', '/t/acme/mcp/x']) {
      expect((await send(`/.well-known/oauth-protected-resource${path}`)).status, path).toBe(404);
    }
    expect((await send('/.well-known/oauth-protected-resource', {}, 'POST')).status).toBe(405);
  });
});
