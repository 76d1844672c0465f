/**
 * The per-connection token memo (server/auth/connection-token-memo.ts): a connection that presents
 * the byte-identical token again skips its shape check and hash, and nothing else. It must never
 * accept what a full verification refuses, never serve another connection, and never outlive the
 * connection that sent the token. Real sockets on 127.0.0.1 and the real test issuer process.
 */
import { EventEmitter, once } from 'node:events';
import { Agent, createServer, request, type Server } from 'node:http';
import { createServer as createNetServer, connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { AuthError } from '../../server/auth/auth-error.js';
import { createAuthenticator, type Authenticator } from '../../server/auth/authenticator.js';
import { ConnectionTokenMemo } from '../../server/auth/connection-token-memo.js';
import { authenticateRequest, sendAuthFailure } from '../../server/auth/http-auth.js';
import { createTokenVerifier } from '../../server/auth/token-verifier.js';
import { authConfigForIssuer, startOidcIssuer, tamperPayload, testAudience, type OidcIssuerProcess } from '../support/oidc-issuer.js';

let idp: OidcIssuerProcess;

beforeAll(async () => {
  idp = await startOidcIssuer();
});
afterAll(async () => {
  await idp?.stop();
});
afterEach(() => {
  vi.useRealTimers();
});

/** A connection as the verifier sees one, without a socket (closed by emitting 'close'). */
function fakeConnection(): EventEmitter & { destroyed: boolean } {
  return Object.assign(new EventEmitter(), { destroyed: false });
}

/** A connected pair of real sockets on 127.0.0.1: [client side, server side]. */
async function socketPair(): Promise<{ client: Socket; server: Socket; close(): Promise<void> }> {
  const listener = createNetServer();
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const accepted = once(listener, 'connection') as Promise<[Socket]>;
  const client = connect((listener.address() as { port: number }).port, '127.0.0.1');
  const [server] = await accepted;
  await once(client, 'connect').catch(() => undefined);
  return {
    client,
    server,
    close: async () => {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

async function refusalOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error, 'the token was accepted').toBeInstanceOf(AuthError);
  return (error as AuthError).reason;
}

describe('ConnectionTokenMemo on real sockets', () => {
  test('an entry is seen only through the socket that presented the token, and only for that very token', async () => {
    const a = await socketPair();
    const b = await socketPair();
    try {
      const memo = new ConnectionTokenMemo();
      memo.remember(a.server, 'tok.en.one', 'digest-one');
      expect(memo.digestOf(a.server, 'tok.en.one')).toBe('digest-one');
      // Built afresh (another string object, same bytes): still the same token.
      expect(memo.digestOf(a.server, ['tok', 'en', 'one'].join('.'))).toBe('digest-one');
      expect(memo.digestOf(a.server, 'tok.en.onf')).toBeUndefined();
      expect(memo.digestOf(b.server, 'tok.en.one')).toBeUndefined();
      expect(memo.has(b.server)).toBe(false);
      // Another token on the same socket replaces the entry: one per connection.
      memo.remember(a.server, 'tok.en.two', 'digest-two');
      expect(memo.digestOf(a.server, 'tok.en.one')).toBeUndefined();
      expect(memo.size).toBe(1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('the entry is deleted when its socket closes', async () => {
    const a = await socketPair();
    const memo = new ConnectionTokenMemo();
    memo.remember(a.server, 'tok.en.one', 'digest-one');
    expect(memo.size).toBe(1);
    const closed = once(a.server, 'close');
    a.client.destroy();
    await closed;
    expect(memo.has(a.server)).toBe(false);
    expect(memo.digestOf(a.server, 'tok.en.one')).toBeUndefined();
    expect(memo.size).toBe(0);
    await a.close();
  });

  test('nothing is remembered for a socket already closed (it would never say close again)', async () => {
    const a = await socketPair();
    const closed = once(a.server, 'close');
    a.server.destroy();
    await closed;
    const memo = new ConnectionTokenMemo();
    memo.remember(a.server, 'tok.en.one', 'digest-one');
    expect(memo.has(a.server)).toBe(false);
    expect(memo.size).toBe(0);
    await a.close();
  });
});

describe('the verifier with a connection', () => {
  const verifierFor = (clockToleranceS = 5) => createTokenVerifier({ issuer: idp.issuer(), audience: [testAudience], clockToleranceS });

  test('a connection presenting the same token again gets the same verification', async () => {
    const verifier = verifierFor();
    const connection = fakeConnection();
    const token = await idp.token({ realmRoles: ['memory-reader'] });
    const first = await verifier.verify(token, connection);
    expect(verifier.presentedTokens.has(connection)).toBe(true);
    expect(await verifier.verify(`${token}`, connection)).toBe(first);
  });

  test('a changed token on the same connection is verified afresh', async () => {
    const verifier = verifierFor();
    const connection = fakeConnection();
    const token = await idp.token({ subject: 'first-subject' });
    await verifier.verify(token, connection);
    // Same length, one signature character changed, and a forged payload: both refused.
    const last = token.at(-2) === 'A' ? 'B' : 'A';
    expect(await refusalOf(verifier.verify(`${token.slice(0, -2)}${last}${token.at(-1)}`, connection))).toBe('bad_signature');
    expect(await refusalOf(verifier.verify(tamperPayload(token, { sub: 'someone-else' }), connection))).toBe('bad_signature');
    expect(await refusalOf(verifier.verify('not a token', connection))).toBe('malformed');
    // Another genuine token on the connection is its own verification.
    const other = await verifier.verify(await idp.token({ subject: 'second-subject' }), connection);
    expect(other.subject).toBe('second-subject');
    expect((await verifier.verify(token, connection)).subject).toBe('first-subject');
  });

  test('an expired token is refused even when the connection presented it before', async () => {
    const verifier = verifierFor(0);
    const connection = fakeConnection();
    const token = await idp.token({ ttlS: 30 });
    const first = await verifier.verify(token, connection);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(first.expiresAtMs - 1_000);
    expect(await verifier.verify(token, connection)).toBe(first);
    expect(verifier.presentedTokens.digestOf(connection, token)).toBeDefined();
    vi.setSystemTime(first.expiresAtMs);
    expect(await refusalOf(verifier.verify(token, connection))).toBe('expired');
    // And after the remembered verification is gone, a full verification refuses it too.
    expect(await refusalOf(verifier.verify(token, connection))).toBe('expired');
  });

  test('a refused token is not remembered for its connection', async () => {
    const verifier = verifierFor();
    const connection = fakeConnection();
    const refreshToken = await idp.token({ tokenType: 'Refresh' });
    expect(await refusalOf(verifier.verify(refreshToken, connection))).toBe('wrong_token_type');
    expect(verifier.presentedTokens.has(connection)).toBe(false);
  });

  test('a connection that closes takes its entry with it', async () => {
    const verifier = verifierFor();
    const connection = fakeConnection();
    await verifier.verify(await idp.token(), connection);
    expect(verifier.presentedTokens.size).toBe(1);
    connection.destroyed = true;
    connection.emit('close');
    expect(verifier.presentedTokens.has(connection)).toBe(false);
    expect(verifier.presentedTokens.size).toBe(0);
  });
});

describe('HTTP requests on keep-alive connections', () => {
  let server: Server;
  let port: number;
  let authenticator: Authenticator;
  /** Server-side sockets by the number the handler answers with. */
  const sockets: Socket[] = [];

  beforeAll(async () => {
    authenticator = createAuthenticator(authConfigForIssuer(idp));
    server = createServer((req, res) => {
      const resource = { publicBaseUrl: `http://127.0.0.1:${port}`, authorizationServers: [idp.issuer()] };
      authenticateRequest(req, { authenticator, resource }).then(
        (result) => {
          if (!result.ok) return sendAuthFailure(res, result.failure);
          let socketNumber = sockets.indexOf(req.socket);
          if (socketNumber === -1) socketNumber = sockets.push(req.socket) - 1;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ subject: result.principal.caller.subject, socketNumber }));
        },
        () => res.writeHead(500).end(),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => {
    server?.closeAllConnections();
    server?.close();
  });

  function send(agent: Agent, authorization: string): Promise<{ status: number; body: { subject?: string; socketNumber?: number } }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/mcp', method: 'POST', agent, headers: { authorization } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : (JSON.parse(text) as { subject?: string }) });
        });
      });
      req.on('error', reject);
      req.end();
    });
  }

  test('each socket has its own entry, tampered tokens are refused on it, and it is gone once the socket closes', async () => {
    const one = new Agent({ keepAlive: true, maxSockets: 1 });
    const two = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const token = await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'], subject: 'ada' });
      const first = await send(one, `Bearer ${token}`);
      expect(first.status).toBe(200);
      const again = await send(one, `bearer   ${token}`);
      expect(again).toEqual(first);
      const socketOne = sockets[first.body.socketNumber!]!;
      const memo = authenticator.verifier.presentedTokens;
      expect(memo.has(socketOne)).toBe(true);

      // A forged token on the socket that presented the genuine one: refused, as on any socket.
      const forged = tamperPayload(token, { organization: ['acme'], realm_access: { roles: ['memory-admin'] } });
      expect((await send(one, `Bearer ${forged}`)).status).toBe(401);
      expect((await send(one, 'Bearer a b')).status).toBe(400);

      // The other socket: no entry until it presents a token itself.
      const other = await send(two, `Bearer ${await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'], subject: 'bob' })}`);
      expect(other.status).toBe(200);
      expect(other.body.subject).toBe('bob');
      const socketTwo = sockets[other.body.socketNumber!]!;
      expect(socketTwo).not.toBe(socketOne);
      expect(memo.digestOf(socketTwo, token)).toBeUndefined();

      const closed = once(socketOne, 'close');
      one.destroy();
      await closed;
      expect(memo.has(socketOne)).toBe(false);
      expect(memo.has(socketTwo)).toBe(true);
    } finally {
      one.destroy();
      two.destroy();
    }
  });
});
