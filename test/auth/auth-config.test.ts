import { describe, expect, test } from 'vitest';
import { MemoryError } from '../../storage/errors.js';
import { authConfigFromEnv } from '../../server/auth/auth-config.js';
import { parseRoleMap, roleMapDefault } from '../../server/auth/capabilities.js';
import { ConfigError, loadConfig } from '../../server/config.js';

describe('identity configuration from the environment', () => {
  test('no issuer means local mode', () => {
    expect(authConfigFromEnv({})).toBeUndefined();
  });

  test('an issuer needs an audience', () => {
    expect(() => authConfigFromEnv({ IOBOXX_OIDC_ISSUER: 'https://id.example.com/realms/r' })).toThrow(MemoryError);
  });

  test('defaults: RS256, 5 s tolerance, organization claim, client id = first audience, default role map', () => {
    const config = authConfigFromEnv({ IOBOXX_OIDC_ISSUER: 'https://id.example.com/realms/r', IOBOXX_OIDC_AUDIENCE: 'memory, other' });
    expect(config?.oidc).toMatchObject({ issuer: 'https://id.example.com/realms/r', audience: ['memory', 'other'], algorithms: ['RS256'], clockToleranceS: 5 });
    expect(config?.clientId).toBe('memory');
    expect(config?.tenantClaim).toBe('organization');
    expect([...(config?.roleMap.keys() ?? [])].sort()).toEqual(Object.keys(roleMapDefault).sort());
  });

  test('every setting can be given', () => {
    const config = authConfigFromEnv({
      IOBOXX_OIDC_ISSUER: 'https://id.example.com/realms/r',
      IOBOXX_OIDC_AUDIENCE: 'memory',
      IOBOXX_OIDC_CLIENT_ID: 'memory-client',
      IOBOXX_OIDC_ALGORITHMS: 'ES256,PS256',
      IOBOXX_OIDC_CLOCK_TOLERANCE_S: '2',
      IOBOXX_TENANT_CLAIM: 'orgs',
      IOBOXX_ROLE_MAP: '{"viewer":["read"]}',
      IOBOXX_PUBLIC_URL: 'https://memory.example.com/',
    });
    expect(config?.publicBaseUrl).toBe('https://memory.example.com');
    expect(config?.oidc.algorithms).toEqual(['ES256', 'PS256']);
    expect(config?.oidc.clockToleranceS).toBe(2);
    expect(config?.clientId).toBe('memory-client');
    expect(config?.tenantClaim).toBe('orgs');
    expect([...(config?.roleMap.get('viewer') ?? [])]).toEqual(['read']);
  });

  test('bad settings are refused at start, naming the variable', () => {
    const base = { IOBOXX_OIDC_ISSUER: 'https://id.example.com/realms/r', IOBOXX_OIDC_AUDIENCE: 'memory' };
    expect(() => authConfigFromEnv({ ...base, IOBOXX_OIDC_ALGORITHMS: 'HS256' })).toThrow(/IOBOXX_OIDC_ALGORITHMS/);
    expect(() => authConfigFromEnv({ ...base, IOBOXX_OIDC_CLOCK_TOLERANCE_S: 'soon' })).toThrow(/IOBOXX_OIDC_CLOCK_TOLERANCE_S/);
    expect(() => authConfigFromEnv({ ...base, IOBOXX_ROLE_MAP: '{"x":["fly"]}' })).toThrow(/IOBOXX_ROLE_MAP/);
    expect(() => authConfigFromEnv({ ...base, IOBOXX_PUBLIC_URL: 'https://memory.example.com/mcp' })).toThrow(/IOBOXX_PUBLIC_URL/);
    // A switch is true/false (1/0): 'yes' is refused, not read as off.
    expect(() => authConfigFromEnv({ ...base, IOBOXX_OIDC_ALLOW_HTTP: 'yes' })).toThrow(/IOBOXX_OIDC_ALLOW_HTTP/);
    expect(authConfigFromEnv({ ...base, IOBOXX_OIDC_ALLOW_HTTP: '1' })!.oidc.allowHttp).toBe(true);
    expect(authConfigFromEnv({ ...base, IOBOXX_OIDC_ALLOW_HTTP: 'false' })!.oidc.allowHttp).toBe(false);
    expect(() => authConfigFromEnv({ ...base, IOBOXX_OIDC_JWKS_STALE_MAX_AGE_MS: '-1' })).toThrow(/IOBOXX_OIDC_JWKS_STALE_MAX_AGE_MS/);
    // What the verifier would refuse once made is refused here, with the others.
    expect(() => authConfigFromEnv({ ...base, IOBOXX_OIDC_CLOCK_TOLERANCE_S: '301' })).toThrow(/IOBOXX_OIDC_CLOCK_TOLERANCE_S/);
    expect(() => authConfigFromEnv({ ...base, IOBOXX_OIDC_ISSUER: 'http://id.example.com/realms/r' })).toThrow(/IOBOXX_OIDC_ISSUER .*must use https/);
    expect(() => authConfigFromEnv({ ...base, IOBOXX_OIDC_ISSUER: 'ftp://id.example.com/realms/r' })).toThrow(/IOBOXX_OIDC_ISSUER/);
    expect(() => authConfigFromEnv({ ...base, IOBOXX_OIDC_ISSUER: 'https://id.example.com/realms/r#x' })).toThrow(/query or fragment/);
    expect(authConfigFromEnv({ ...base, IOBOXX_OIDC_ISSUER: 'http://id.example.com/realms/r', IOBOXX_OIDC_ALLOW_HTTP: 'true' })!.oidc.allowHttp).toBe(true);
    expect(authConfigFromEnv({ ...base, IOBOXX_OIDC_ISSUER: 'http://127.0.0.1:8080/realms/r' })!.oidc.issuer).toBe('http://127.0.0.1:8080/realms/r');
    expect(() => parseRoleMap('[]')).toThrow(MemoryError);
    expect(() => parseRoleMap('not json')).toThrow(MemoryError);
  });

  test('every bad setting is reported together, with the other settings of the environment (README: fix them all in one go)', () => {
    const env = {
      IOBOXX_OIDC_ISSUER: 'https://id.example.com/realms/r',
      IOBOXX_OIDC_ALGORITHMS: 'HS256',
      IOBOXX_OIDC_CLOCK_TOLERANCE_S: 'soon',
      IOBOXX_OIDC_ALLOW_HTTP: 'yes',
      IOBOXX_ROLE_MAP: '{',
      IOBOXX_PUBLIC_URL: 'https://memory.example.com/mcp',
      IOBOXX_HTTP_PORT: 'abc',
    };
    let error: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const named = ['IOBOXX_OIDC_AUDIENCE', 'IOBOXX_OIDC_ALGORITHMS', 'IOBOXX_OIDC_CLOCK_TOLERANCE_S', 'IOBOXX_OIDC_ALLOW_HTTP', 'IOBOXX_ROLE_MAP', 'IOBOXX_PUBLIC_URL', 'IOBOXX_HTTP_PORT'];
    const problems = (error as ConfigError).problems;
    expect(named.filter((name) => !problems.some((p) => p.includes(name))), problems.join('\n')).toEqual([]);
    expect(problems).toHaveLength(named.length);
  });
});
