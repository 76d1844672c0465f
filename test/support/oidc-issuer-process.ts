/**
 * A real OpenID Connect issuer for tests, run as its own process on 127.0.0.1 (port 0). It
 * serves Keycloak's paths and issues Keycloak-shaped access tokens through a test-only admin
 * API. Started by `startOidcIssuer` (oidc-issuer.ts); prints its base URL as the first stdout line.
 *
 *   GET  /realms/R/.well-known/openid-configuration
 *   GET  /realms/R/protocol/openid-connect/certs      (JWKS: one signing key per algorithm, plus
 *                                                      an RSA-OAEP encryption key as Keycloak has)
 *   POST /test/realms/R/token    {alg?, kid?, unpublishedKey?, ttlS?, header?, claims?}  -> {token}
 *        claims are merged over Keycloak's defaults; a null value deletes the claim.
 *        alg: RS256 | ES256 | PS256 | none | HS256-public-key (HMAC keyed with the RS256 public PEM)
 *   POST /test/realms/R/rotate   {alg?, keepOld?}  -> {kid, retiredKid}
 *   GET  /test/realms/R/stats    -> {discoveryFetches, jwksFetches}
 *   POST /test/realms/R/jwks-status {status}  -> {}   (the JWKS answers this status, 200 serves the keys)
 *
 * Usage: node --import tsx test/support/oidc-issuer-process.ts [--realm NAME]...
 */
import { createHmac, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { calculateJwkThumbprint, CompactSign, exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose';

type SigningAlg = 'RS256' | 'ES256' | 'PS256';
const signingAlgs: readonly SigningAlg[] = ['RS256', 'ES256', 'PS256'];
const requestBytesMax = 64 * 1024;
const ttlSDefault = 300;

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

interface RealmKey {
  readonly kid: string;
  readonly alg: SigningAlg | 'RSA-OAEP';
  readonly privateKey: KeyPair['privateKey'];
  readonly publicKey: KeyPair['publicKey'];
  readonly publicJwk: JWK;
  published: boolean;
}

interface Realm {
  readonly name: string;
  readonly keys: RealmKey[];
  readonly active: Map<SigningAlg, RealmKey>;
  /** Keys never published, for unknown-kid tokens. */
  readonly rogue: Map<SigningAlg, Promise<RealmKey>>;
  discoveryFetches: number;
  jwksFetches: number;
  /** What the JWKS endpoint answers: 200 serves the keys, any other status an outage. */
  jwksStatus: number;
}

async function newKey(alg: SigningAlg | 'RSA-OAEP'): Promise<RealmKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return {
    kid,
    alg,
    privateKey,
    publicKey,
    publicJwk: { ...jwk, kid, alg, use: alg === 'RSA-OAEP' ? 'enc' : 'sig' },
    published: true,
  };
}

async function newRealm(name: string): Promise<Realm> {
  const realm: Realm = { name, keys: [], active: new Map(), rogue: new Map(), discoveryFetches: 0, jwksFetches: 0, jwksStatus: 200 };
  // Key generation runs on libuv's pool: generate a realm's keys at once.
  const signingKeys = await Promise.all(signingAlgs.map((alg) => newKey(alg)));
  for (const key of signingKeys) {
    realm.keys.push(key);
    realm.active.set(key.alg as SigningAlg, key);
  }
  realm.keys.push(await newKey('RSA-OAEP'));
  return realm;
}

function base64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

interface TokenRequest {
  readonly alg?: SigningAlg | 'none' | 'HS256-public-key';
  readonly kid?: string;
  readonly unpublishedKey?: boolean;
  readonly ttlS?: number;
  readonly header?: Record<string, unknown>;
  readonly claims?: Record<string, unknown>;
}

function defaultClaims(issuer: string, realm: Realm, ttlS: number): Record<string, unknown> {
  const nowS = Math.floor(Date.now() / 1000);
  return {
    exp: nowS + ttlS,
    iat: nowS,
    auth_time: nowS,
    jti: randomUUID(),
    iss: issuer,
    aud: ['ioboxx-memory', 'account'],
    sub: '6f1c1d3e-0000-4000-8000-000000000001',
    typ: 'Bearer',
    azp: 'ioboxx-cli',
    sid: randomUUID(),
    acr: '1',
    'allowed-origins': ['http://127.0.0.1'],
    realm_access: { roles: [`default-roles-${realm.name}`, 'offline_access', 'uma_authorization'] },
    resource_access: { account: { roles: ['manage-account', 'view-profile'] } },
    scope: 'openid profile email organization',
    email_verified: true,
    name: 'Test User',
    preferred_username: 'test-user',
    given_name: 'Test',
    family_name: 'User',
    email: 'test-user@example.test',
  };
}

async function issueToken(issuer: string, realm: Realm, request: TokenRequest): Promise<string> {
  const claims = defaultClaims(issuer, realm, request.ttlS ?? ttlSDefault);
  for (const [name, value] of Object.entries(request.claims ?? {})) {
    if (value === null) delete claims[name];
    else claims[name] = value;
  }
  const payload = new TextEncoder().encode(JSON.stringify(claims));
  const alg = request.alg ?? 'RS256';
  const rsaKey = realm.active.get('RS256') as RealmKey;
  if (alg === 'none') {
    const header = { alg: 'none', typ: 'JWT', kid: rsaKey.kid, ...request.header };
    return `${base64url(JSON.stringify(header))}.${base64url(Buffer.from(payload))}.`;
  }
  if (alg === 'HS256-public-key') {
    // The classic confusion attack: HMAC keyed with the verifier's own public key.
    const secret = await exportSPKI(rsaKey.publicKey);
    const header = { alg: 'HS256', typ: 'JWT', kid: rsaKey.kid, ...request.header };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(Buffer.from(payload))}`;
    return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
  }
  let key: RealmKey | undefined;
  let kid: string | undefined;
  if (request.unpublishedKey) {
    // One never-published key per realm and algorithm, under a fresh kid each time: a flood of
    // distinct unknown kids without paying for a key generation per token.
    const rogue = realm.rogue.get(alg) ?? newKey(alg);
    realm.rogue.set(alg, rogue);
    key = await rogue;
    kid = `rogue-${randomUUID()}`;
  } else if (request.kid !== undefined) {
    key = realm.keys.find((candidate) => candidate.kid === request.kid);
    if (key === undefined) throw new HttpError(404, `no key ${request.kid}`);
  } else {
    key = realm.active.get(alg);
  }
  if (key === undefined || key.alg === 'RSA-OAEP') throw new HttpError(400, `no signing key for ${alg}`);
  const header = { alg: key.alg, typ: 'JWT', kid: kid ?? key.kid, ...request.header };
  return new CompactSign(payload).setProtectedHeader(header as { alg: string }).sign(key.privateKey);
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    bytes += (chunk as Buffer).length;
    if (bytes > requestBytesMax) throw new HttpError(413, 'request too large');
    chunks.push(chunk as Buffer);
  }
  if (bytes === 0) return {};
  const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'body must be an object');
  return value as Record<string, unknown>;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function main(): Promise<void> {
  const realmNames: string[] = [];
  const args = process.argv.slice(2);
  for (let index = 0; index < args.length; index += 1) {
    if (args[index] === '--realm' && args[index + 1] !== undefined) realmNames.push(args[(index += 1)] as string);
    else throw new Error(`unknown argument ${args[index]}`);
  }
  const realms = new Map<string, Realm>();
  const created = await Promise.all((realmNames.length > 0 ? realmNames : ['ioboxx']).map((name) => newRealm(name)));
  for (const realm of created) realms.set(realm.name, realm);

  let baseUrl = '';
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const status = error instanceof HttpError ? error.status : 500;
      sendJson(res, status, { error: (error as Error).message });
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] as string;
    const realmMatch = /^\/(test\/)?realms\/([^/]+)\/(.+)$/.exec(path);
    const realm = realmMatch ? realms.get(realmMatch[2] as string) : undefined;
    if (!realmMatch || realm === undefined) throw new HttpError(404, 'Realm does not exist');
    const issuer = `${baseUrl}/realms/${realm.name}`;
    const isAdmin = realmMatch[1] !== undefined;
    const route = `${req.method} ${realmMatch[3]}`;
    if (!isAdmin && route === 'GET .well-known/openid-configuration') {
      realm.discoveryFetches += 1;
      const oidc = `${issuer}/protocol/openid-connect`;
      return sendJson(res, 200, {
        issuer,
        authorization_endpoint: `${oidc}/auth`,
        token_endpoint: `${oidc}/token`,
        introspection_endpoint: `${oidc}/token/introspect`,
        userinfo_endpoint: `${oidc}/userinfo`,
        end_session_endpoint: `${oidc}/logout`,
        jwks_uri: `${oidc}/certs`,
        grant_types_supported: ['authorization_code', 'refresh_token', 'client_credentials'],
        response_types_supported: ['code'],
        subject_types_supported: ['public', 'pairwise'],
        id_token_signing_alg_values_supported: [...signingAlgs],
        code_challenge_methods_supported: ['plain', 'S256'],
        scopes_supported: ['openid', 'profile', 'email', 'organization', 'offline_access'],
      });
    }
    if (!isAdmin && route === 'GET protocol/openid-connect/certs') {
      realm.jwksFetches += 1;
      if (realm.jwksStatus !== 200) return sendJson(res, realm.jwksStatus, { error: 'unavailable' });
      return sendJson(res, 200, { keys: realm.keys.filter((key) => key.published).map((key) => key.publicJwk) });
    }
    if (isAdmin && route === 'POST token') {
      const request = (await readJson(req)) as TokenRequest;
      return sendJson(res, 200, { token: await issueToken(issuer, realm, request) });
    }
    if (isAdmin && route === 'POST rotate') {
      const request = await readJson(req);
      const alg = (request.alg ?? 'RS256') as SigningAlg;
      if (!signingAlgs.includes(alg)) throw new HttpError(400, `cannot rotate ${alg}`);
      const retired = realm.active.get(alg) as RealmKey;
      const fresh = await newKey(alg);
      realm.keys.push(fresh);
      realm.active.set(alg, fresh);
      retired.published = request.keepOld !== false;
      return sendJson(res, 200, { kid: fresh.kid, retiredKid: retired.kid });
    }
    if (isAdmin && route === 'POST jwks-status') {
      const { status } = await readJson(req);
      if (!(Number.isInteger(status) && (status as number) >= 200 && (status as number) <= 599)) throw new HttpError(400, 'status must be an HTTP status');
      realm.jwksStatus = status as number;
      return sendJson(res, 200, {});
    }
    if (isAdmin && route === 'GET stats') {
      return sendJson(res, 200, { discoveryFetches: realm.discoveryFetches, jwksFetches: realm.jwksFetches });
    }
    throw new HttpError(404, 'not found');
  }

  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    baseUrl = `http://127.0.0.1:${address.port}`;
    process.stdout.write(`${baseUrl}\n`);
  });
  const stop = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The parent holds our stdin: when it goes away (even killed), so do we.
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

main().catch((error: unknown) => {
  process.stderr.write(`oidc-issuer: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
