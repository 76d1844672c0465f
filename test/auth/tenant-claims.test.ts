import { describe, expect, test } from 'vitest';
import { AuthError, type AuthFailureReason } from '../../server/auth/auth-error.js';
import { organizationAliases, organizationsMax, resolveTenant } from '../../server/auth/tenant-claims.js';
import { isTenantId } from '../../server/tenants/tenant-id.js';

function reasonOf(run: () => unknown): AuthFailureReason | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(AuthError);
    return (error as AuthError).reason;
  }
}

const badTenantIds = ['../x', '%2e%2e', '..', 'A', 'Acme', 'a'.repeat(200), 'a'.repeat(64), '租户', 'tenänt', 'ａcme', 'a/b', 'a\\b', 'a.b', 'a b', '', '-acme', 'x'];

describe('tenant ids', () => {
  test('the pattern admits lowercase ids of 2-63 characters and nothing else', () => {
    for (const good of ['acme', 'ac', 'acme-eu-1', '0day', 'a'.repeat(63)]) expect(isTenantId(good), good).toBe(true);
    for (const bad of badTenantIds) expect(isTenantId(bad), JSON.stringify(bad)).toBe(false);
    expect(isTenantId(42)).toBe(false);
  });
});

describe('organization claim', () => {
  test('both Keycloak shapes give the aliases', () => {
    expect(organizationAliases({ organization: ['acme', 'globex', 'acme'] })).toEqual(['acme', 'globex']);
    expect(organizationAliases({ organization: { acme: { id: 'x1' }, globex: { id: 'x2', name: 'Globex' } } })).toEqual(['acme', 'globex']);
    expect(organizationAliases({})).toEqual([]);
    expect(organizationAliases({ org: ['initech'] }, 'org')).toEqual(['initech']);
  });

  test('other shapes are malformed claims', () => {
    for (const organization of ['acme', 42, true, [1], { acme: 'x' }, { acme: ['x'] }]) {
      expect(reasonOf(() => organizationAliases({ organization })), JSON.stringify(organization)).toBe('malformed_claims');
    }
    const many = Array.from({ length: organizationsMax + 1 }, (_, index) => `org-${index}`);
    expect(reasonOf(() => organizationAliases({ organization: many }))).toBe('malformed_claims');
  });
});

describe('tenant resolution', () => {
  test('one organization needs no selection; a matching selection is fine too', () => {
    expect(resolveTenant(['acme'], undefined)).toBe('acme');
    expect(resolveTenant(['acme'], 'acme')).toBe('acme');
  });

  test('several organizations need a selection that is one of them', () => {
    expect(reasonOf(() => resolveTenant(['acme', 'globex'], undefined))).toBe('tenant_selection_required');
    expect(resolveTenant(['acme', 'globex'], 'globex')).toBe('globex');
    expect(reasonOf(() => resolveTenant(['acme', 'globex'], 'initech'))).toBe('not_a_member');
  });

  test('malformed selections are refused as invalid before membership is considered', () => {
    for (const selection of badTenantIds) {
      expect(reasonOf(() => resolveTenant(['acme', selection], selection)), JSON.stringify(selection)).toBe('invalid_tenant');
    }
  });

  test('no organization, or a lone alias that is not a valid id, is no tenant', () => {
    expect(reasonOf(() => resolveTenant([], undefined))).toBe('no_tenant');
    expect(reasonOf(() => resolveTenant(['Acme Corp'], undefined))).toBe('no_tenant');
  });

  test('invalid_tenant is a 400, not_a_member a 403', () => {
    expect(new AuthError('invalid_tenant', 'x').status).toBe(400);
    expect(new AuthError('not_a_member', 'x').status).toBe(403);
  });
});
