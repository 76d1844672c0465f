/**
 * From a real issuer's token to a Principal: roles to capabilities, the tenant from the
 * organization claim, the stdio (IOBOXX_TOKEN) path, and local mode.
 */
import { afterAll, assert, beforeAll, describe, expect, test } from 'vitest';
import { AuthError } from '../../server/auth/auth-error.js';
import { createAuthenticator, type Authenticator } from '../../server/auth/authenticator.js';
import { parseRoleMap, requireCapability } from '../../server/auth/capabilities.js';
import { authenticateEnvToken } from '../../server/auth/env-token.js';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { authConfigFromEnv } from '../../server/auth/auth-config.js';
import { authConfigForIssuer, oidcEnvForIssuer, startOidcIssuer, testAudience, type OidcIssuerProcess } from '../support/oidc-issuer.js';

let idp: OidcIssuerProcess;
let authenticator: Authenticator;

beforeAll(async () => {
  idp = await startOidcIssuer();
  authenticator = createAuthenticator(authConfigForIssuer(idp));
});
afterAll(async () => {
  await idp?.stop();
});

const capabilitiesOf = async (token: string, tenant?: string) => [...(await authenticator.authenticate(token, tenant)).capabilities].sort();

describe('roles to capabilities', () => {
  test('a reader may read and lacks write: a write call is refused as forbidden (403)', async () => {
    const principal = await authenticator.authenticate(await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'] }), undefined);
    expect([...principal.capabilities]).toEqual(['read']);
    expect(() => requireCapability(principal, 'read')).not.toThrow();
    let refusal: unknown;
    try {
      requireCapability(principal, 'write');
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(AuthError);
    expect(refusal).toMatchObject({ reason: 'insufficient_capability', code: 'forbidden', status: 403, oauthError: 'insufficient_scope' });
  });

  test('the default map: writer, admin and auditor', async () => {
    const token = (realmRoles: string[]) => idp.token({ organizations: ['acme'], realmRoles });
    expect(await capabilitiesOf(await token(['memory-writer']))).toEqual(['read', 'write']);
    expect(await capabilitiesOf(await token(['memory-admin']))).toEqual(['admin', 'read', 'write']);
    expect(await capabilitiesOf(await token(['auditor']))).toEqual(['audit', 'read']);
    expect(await capabilitiesOf(await token(['memory-reader', 'auditor']))).toEqual(['audit', 'read']);
  });

  test("this resource's client roles count; another client's do not", async () => {
    const mine = await idp.token({ organizations: ['acme'], clientRoles: { [testAudience]: ['memory-writer'] } });
    expect(await capabilitiesOf(mine)).toEqual(['read', 'write']);
    const theirs = await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'], clientRoles: { 'other-app': ['memory-admin'] } });
    expect(await capabilitiesOf(theirs)).toEqual(['read']);
  });

  test('Keycloak default roles grant nothing', async () => {
    expect(await capabilitiesOf(await idp.token({ organizations: ['acme'] }))).toEqual([]);
  });

  test('a configured role map replaces the defaults', async () => {
    const custom = createAuthenticator(
      authConfigForIssuer(idp, { roleMap: parseRoleMap('{"kb-viewer":["read"],"kb-editor":["read","write"]}') }),
    );
    const editor = await custom.authenticate(await idp.token({ organizations: ['acme'], realmRoles: ['kb-editor', 'memory-admin'] }), undefined);
    expect([...editor.capabilities].sort()).toEqual(['read', 'write']);
  });

  test('the principal carries tenant, subject, username and roles', async () => {
    const token = await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'], subject: 'sub-9', username: 'grace' });
    const principal = await authenticator.authenticate(token, undefined);
    expect(principal.via).toBe('token');
    expect(principal.caller).toMatchObject({ tenant: 'acme', subject: 'sub-9', name: 'grace' });
    expect(principal.caller.roles).toEqual(expect.arrayContaining(['memory-reader', 'offline_access']));
    expect(principal.tokenExpiresAtMs).toBeGreaterThan(Date.now());
  });

  test('a malformed roles claim is refused, not read as no roles', async () => {
    const token = await idp.token({ organizations: ['acme'], claims: { realm_access: { roles: 'memory-admin' } } });
    await expect(authenticator.authenticate(token, undefined)).rejects.toMatchObject({ reason: 'malformed_claims' });
  });
});

describe('tenant from the organization claim', () => {
  test('both shapes name the tenant; a configured claim name is honoured', async () => {
    const list = await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'] });
    const object = await idp.token({ organizations: { acme: { id: 'a1b2' } }, realmRoles: ['memory-reader'] });
    expect((await authenticator.authenticate(list, undefined)).caller.tenant).toBe('acme');
    expect((await authenticator.authenticate(object, undefined)).caller.tenant).toBe('acme');
    const renamed = createAuthenticator(authConfigForIssuer(idp, { tenantClaim: 'tenants' }));
    const token = await idp.token({ claims: { tenants: ['globex'] }, organizations: ['acme'], realmRoles: ['memory-reader'] });
    expect((await renamed.authenticate(token, undefined)).caller.tenant).toBe('globex');
  });

  test("org A's token selecting org B is refused as not a member", async () => {
    const token = await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'] });
    await expect(authenticator.authenticate(token, 'globex')).rejects.toMatchObject({ reason: 'not_a_member', status: 403 });
  });
});

describe('stdio with identity (IOBOXX_TOKEN)', () => {
  test('a configuration read from the environment trusts the issuer it names', async () => {
    const fromEnv = createAuthenticator(authConfigFromEnv(oidcEnvForIssuer(idp)) ?? assert.fail('no config'));
    const token = await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'] });
    expect((await authenticateEnvToken(token, fromEnv)).caller.tenant).toBe('acme');
  });

  test('an environment token is verified like a bearer token', async () => {
    const token = await idp.token({ organizations: ['acme'], realmRoles: ['memory-writer'] });
    const principal = await authenticateEnvToken(token, authenticator);
    expect(principal.caller.tenant).toBe('acme');
    expect(await authenticateEnvToken(await idp.token({ organizations: ['acme'], ttlS: -60 }), authenticator).catch((error: AuthError) => error.reason)).toBe(
      'expired',
    );
  });

  test('a missing token is refused; IOBOXX_TENANT selects among several organizations', async () => {
    await expect(authenticateEnvToken(undefined, authenticator)).rejects.toMatchObject({ reason: 'missing_token' });
    const token = await idp.token({ organizations: ['acme', 'globex'], realmRoles: ['memory-reader'] });
    // Told what a stdio server can do (IOBOXX_TENANT), not HTTP's path or header.
    const refused = await authenticateEnvToken(token, authenticator).catch((error: AuthError) => error);
    expect(refused).toMatchObject({ reason: 'tenant_selection_required', message: expect.stringContaining('IOBOXX_TENANT') });
    expect((refused as AuthError).message).not.toMatch(/X-Ioboxx-Tenant|\/t\//);
    expect((await authenticateEnvToken(token, authenticator, 'globex')).caller.tenant).toBe('globex');
    await expect(authenticateEnvToken(token, authenticator, '../acme')).rejects.toMatchObject({ reason: 'invalid_tenant' });
  });
});

describe('local mode', () => {
  test('the local principal has every capability in the local tenant', () => {
    const principal = localPrincipal();
    expect(principal.via).toBe('local');
    expect(principal.caller.tenant).toBe('local');
    expect([...principal.capabilities].sort()).toEqual(['admin', 'audit', 'read', 'write']);
    expect(localPrincipal('desk-1').caller.tenant).toBe('desk-1');
    expect(() => localPrincipal('../x')).toThrow();
  });
});

describe('a remembered principal', () => {
  test('is reused per token and tenant selection; membership is still checked per selection', async () => {
    const token = await idp.token({ organizations: ['acme', 'globex'], realmRoles: ['memory-reader'] });
    const acme = await authenticator.authenticate(token, 'acme');
    expect(await authenticator.authenticate(token, 'acme')).toBe(acme);
    const globex = await authenticator.authenticate(token, 'globex');
    expect(globex.caller.tenant).toBe('globex');
    expect(acme.caller.tenant).toBe('acme');
    await expect(authenticator.authenticate(token, 'initech')).rejects.toMatchObject({ reason: 'not_a_member' });
    await expect(authenticator.authenticate(token, undefined)).rejects.toMatchObject({ reason: 'tenant_selection_required' });
  });

  test('cannot be altered by a consumer', async () => {
    const token = await idp.token({ organizations: ['acme'], realmRoles: ['memory-reader'] });
    const principal = await authenticator.authenticate(token, undefined);
    expect(() => {
      (principal.caller as { tenant: string }).tenant = 'globex';
    }).toThrow(TypeError);
    expect(() => {
      (principal.caller.roles as string[]).push('memory-admin');
    }).toThrow(TypeError);
    expect((await authenticator.authenticate(token, undefined)).caller.tenant).toBe('acme');
  });
});
