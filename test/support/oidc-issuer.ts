/**
 * Starts the test OIDC issuer (oidc-issuer-process.ts) as a real child process on 127.0.0.1 and
 * talks to its test-only admin API. Keycloak-shaped token options on top of raw claim overrides:
 *
 *   const idp = await startOidcIssuer();
 *   const token = await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'] });
 *   const config = authConfigForIssuer(idp);          // an AuthConfig trusting it
 *   ...
 *   await idp.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { AuthConfig } from '../../server/auth/auth-config.js';
import { roleMapDefault, roleMapFrom } from '../../server/auth/capabilities.js';

export const testRealmDefault = 'ioboxx';
/** The audience and client id the test tokens carry by default (the Audience mapper's value). */
export const testAudience = 'ioboxx-memory';
/** Generous: on a crowded 2-core machine a tsx child can take tens of seconds to print its URL. */
const startTimeoutMs = 100_000;

export type TokenAlg = 'RS256' | 'ES256' | 'PS256' | 'none' | 'HS256-public-key';

export interface TestTokenOptions {
  readonly realm?: string;
  readonly alg?: TokenAlg;
  /** Sign with this (possibly retired, unpublished) key. */
  readonly kid?: string;
  /** Sign with a fresh key the issuer never publishes. */
  readonly unpublishedKey?: boolean;
  readonly ttlS?: number;
  readonly header?: Record<string, unknown>;
  readonly subject?: string;
  readonly username?: string;
  /** `realm_access.roles` (added to Keycloak's default realm roles). */
  readonly realmRoles?: readonly string[];
  /** `resource_access.CLIENT.roles`; `account` roles are always present, as in Keycloak. */
  readonly clientRoles?: Readonly<Record<string, readonly string[]>>;
  /** The organization claim: a list of aliases, or an object keyed by alias. */
  readonly organizations?: readonly string[] | Readonly<Record<string, { readonly id: string }>>;
  /** null removes `aud`. */
  readonly audience?: string | readonly string[] | null;
  /** Keycloak's payload `typ`; null removes it. */
  readonly tokenType?: 'Bearer' | 'Refresh' | 'ID' | 'Logout' | null;
  /** Raw claim overrides, applied last; null deletes a claim. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

export interface OidcIssuerProcess {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly child: ChildProcess;
  /** The issuer URL of a realm: `${url}/realms/${realm}`. */
  issuer(realm?: string): string;
  token(options?: TestTokenOptions): Promise<string>;
  /** A new active key for `alg`; the previous one stays published unless keepOld is false. */
  rotate(options?: { realm?: string; alg?: 'RS256' | 'ES256' | 'PS256'; keepOld?: boolean }): Promise<{ kid: string; retiredKid: string }>;
  stats(realm?: string): Promise<{ discoveryFetches: number; jwksFetches: number }>;
  /** The JWKS endpoint answers `status` from now on (200: the keys again; else an outage). */
  jwksStatus(status: number, realm?: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startOidcIssuer(options: { realms?: readonly string[] } = {}): Promise<OidcIssuerProcess> {
  const script = fileURLToPath(new URL('./oidc-issuer-process.ts', import.meta.url));
  const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
  const args = ['--import', 'tsx', script, ...(options.realms ?? []).flatMap((realm) => ['--realm', realm])];
  const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['pipe', 'pipe', 'inherit'] });
  const url = await firstLine(child);
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) {
    child.kill('SIGKILL');
    throw new Error(`test OIDC issuer printed ${JSON.stringify(url)} instead of its URL`);
  }

  async function admin<T>(method: 'GET' | 'POST', realm: string, route: string, body?: unknown): Promise<T> {
    const response = await fetch(`${url}/test/realms/${realm}/${route}`, {
      method,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await response.json()) as T & { error?: string };
    if (!response.ok) throw new Error(`test OIDC issuer ${route}: ${response.status} ${json.error ?? ''}`);
    return json;
  }

  return {
    url,
    child,
    issuer: (realm = testRealmDefault) => `${url}/realms/${realm}`,
    async token(tokenOptions = {}) {
      const realm = tokenOptions.realm ?? testRealmDefault;
      const { token } = await admin<{ token: string }>('POST', realm, 'token', tokenRequestOf(realm, tokenOptions));
      return token;
    },
    rotate: (rotateOptions = {}) => admin('POST', rotateOptions.realm ?? testRealmDefault, 'rotate', rotateOptions),
    stats: (realm = testRealmDefault) => admin('GET', realm, 'stats'),
    jwksStatus: async (status, realm = testRealmDefault) => {
      await admin('POST', realm, 'jwks-status', { status });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function tokenRequestOf(realm: string, options: TestTokenOptions): Record<string, unknown> {
  const claims: Record<string, unknown> = {};
  if (options.subject !== undefined) claims.sub = options.subject;
  if (options.username !== undefined) claims.preferred_username = options.username;
  if (options.realmRoles !== undefined) {
    claims.realm_access = { roles: [`default-roles-${realm}`, 'offline_access', 'uma_authorization', ...options.realmRoles] };
  }
  if (options.clientRoles !== undefined) {
    const access: Record<string, { roles: readonly string[] }> = { account: { roles: ['manage-account', 'view-profile'] } };
    for (const [client, roles] of Object.entries(options.clientRoles)) access[client] = { roles };
    claims.resource_access = access;
  }
  if (options.organizations !== undefined) claims.organization = options.organizations;
  if (options.audience !== undefined) claims.aud = options.audience;
  if (options.tokenType !== undefined) claims.typ = options.tokenType;
  Object.assign(claims, options.claims);
  return {
    alg: options.alg,
    kid: options.kid,
    unpublishedKey: options.unpublishedKey,
    ttlS: options.ttlS,
    header: options.header,
    claims,
  };
}

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`test OIDC issuer did not print its URL within ${startTimeoutMs} ms`));
    }, startTimeoutMs);
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`test OIDC issuer exited (code ${code}) before printing its URL`));
    };
    child.once('exit', onExit);
    lines.once('line', (line) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      lines.close();
      resolve(line.trim());
    });
  });
}

/** An AuthConfig trusting the test issuer's realm, with the default role map; override as needed. */
export function authConfigForIssuer(
  idp: Pick<OidcIssuerProcess, 'issuer'>,
  overrides: { realm?: string; oidc?: Partial<AuthConfig['oidc']>; clientId?: string; tenantClaim?: string; roleMap?: AuthConfig['roleMap'] } = {},
): AuthConfig {
  return {
    oidc: { issuer: idp.issuer(overrides.realm), audience: [testAudience], ...overrides.oidc },
    clientId: overrides.clientId ?? testAudience,
    tenantClaim: overrides.tenantClaim ?? 'organization',
    roleMap: overrides.roleMap ?? roleMapFrom(roleMapDefault),
  };
}

/** The environment a server process needs to trust the test issuer (see server/auth/auth-config.ts). */
export function oidcEnvForIssuer(idp: Pick<OidcIssuerProcess, 'issuer'>, realm?: string): Record<string, string> {
  return { IOBOXX_OIDC_ISSUER: idp.issuer(realm), IOBOXX_OIDC_AUDIENCE: testAudience };
}

/** The token with its payload changed and its signature kept: what a forger can do. */
export function tamperPayload(token: string, patch: Readonly<Record<string, unknown>>): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
  return `${header}.${Buffer.from(JSON.stringify({ ...claims, ...patch })).toString('base64url')}.${signature}`;
}
