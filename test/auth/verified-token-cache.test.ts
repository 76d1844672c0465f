/**
 * The remembering rules of VerifiedTokenCache on their own, with key sets written the way jose
 * writes its exported JWKS cache ({uat, jwks}, replaced in place on each load).
 */
import { describe, expect, test } from 'vitest';
import type { JSONWebKeySet } from 'jose';
import { VerifiedTokenCache, type LoadedKeys } from '../../server/auth/verified-token-cache.js';

const rsa = (kid: string, n: string) => ({ kty: 'RSA', kid, n, e: 'AQAB', alg: 'RS256', use: 'sig' });
const t0 = 1_700_000_000_000;

function cacheOver(keys: { uat?: number; jwks?: JSONWebKeySet }, overrides: { entriesMax?: number; ttlMs?: number } = {}) {
  return new VerifiedTokenCache<string>({
    entriesMax: overrides.entriesMax ?? 16,
    ttlMs: overrides.ttlMs ?? 60_000,
    clockToleranceMs: 5_000,
    keysMaxAgeMs: 600_000,
    keys: keys as LoadedKeys,
  });
}

const facts = { keyId: 'k1', expiresAtMs: t0 + 3_600_000, notBeforeMs: undefined };

describe('VerifiedTokenCache', () => {
  test('a digest is the token SHA-256, never the token', () => {
    const cache = cacheOver({});
    const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
    const digest = cache.digestOf(token);
    expect(digest).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(digest).not.toContain(token.slice(0, 10));
    expect(cache.digestOf(`${token}x`)).not.toBe(digest);
  });

  test('holds at most entriesMax verifications, forgetting the oldest first', () => {
    const keys = { uat: t0, jwks: { keys: [rsa('k1', 'n1')] } };
    const cache = cacheOver(keys, { entriesMax: 3 });
    for (let i = 0; i < 10; i++) cache.remember(`d${i}`, `r${i}`, facts, t0);
    expect(cache.size).toBe(3);
    expect(cache.recall('d0', t0).verdict).toBe('unknown');
    expect(cache.recall('d9', t0)).toEqual({ verdict: 'valid', result: 'r9' });
  });

  test('a key republished under the same kid with other material ends the verifications made with it', () => {
    const keys: { uat?: number; jwks?: JSONWebKeySet } = { uat: t0, jwks: { keys: [rsa('k1', 'n1')] } };
    const cache = cacheOver(keys);
    cache.remember('d', 'r', facts, t0);
    keys.uat = t0 + 1_000;
    keys.jwks = { keys: [rsa('k1', 'n1'), rsa('k2', 'n2')] };
    expect(cache.recall('d', t0 + 2_000).verdict).toBe('valid');
    keys.uat = t0 + 3_000;
    keys.jwks = { keys: [rsa('k1', 'other-modulus')] };
    expect(cache.recall('d', t0 + 4_000).verdict).toBe('unknown');
    expect(cache.size).toBe(0);
  });

  test('nothing is remembered for a kid the loaded key set does not hold once, or before any key set loaded', () => {
    const cache = cacheOver({ uat: t0, jwks: { keys: [rsa('k1', 'n1'), rsa('k1', 'n2')] } });
    cache.remember('twice', 'r', facts, t0);
    cache.remember('absent', 'r', { ...facts, keyId: 'k9' }, t0);
    expect(cache.size).toBe(0);
    const unloaded = cacheOver({});
    unloaded.remember('d', 'r', facts, t0);
    expect(unloaded.size).toBe(0);
  });

  test('keys older than their max age send the token to a full verification', () => {
    const cache = cacheOver({ uat: t0, jwks: { keys: [rsa('k1', 'n1')] } }, { ttlMs: 3_600_000 });
    cache.remember('d', 'r', facts, t0);
    expect(cache.recall('d', t0 + 599_000).verdict).toBe('valid');
    expect(cache.recall('d', t0 + 600_000).verdict).toBe('unknown');
  });

  test('exp and nbf are applied with the clock tolerance on every recall', () => {
    const cache = cacheOver({ uat: t0, jwks: { keys: [rsa('k1', 'n1')] } });
    const exp = t0 + 30_000;
    cache.remember('d', 'r', { ...facts, expiresAtMs: exp, notBeforeMs: t0 }, t0);
    expect(cache.recall('d', t0 - 5_000).verdict).toBe('valid');
    expect(cache.recall('d', t0 - 5_001).verdict).toBe('not_yet_valid');
    cache.remember('d', 'r', { ...facts, expiresAtMs: exp, notBeforeMs: t0 }, t0);
    expect(cache.recall('d', exp + 4_999).verdict).toBe('valid');
    expect(cache.recall('d', exp + 5_000).verdict).toBe('expired');
    expect(cache.recall('d', t0).verdict).toBe('unknown');
  });

  test('entriesMax 0 remembers nothing', () => {
    const cache = cacheOver({ uat: t0, jwks: { keys: [rsa('k1', 'n1')] } }, { entriesMax: 0 });
    expect(cache.enabled).toBe(false);
    cache.remember('d', 'r', facts, t0);
    expect(cache.recall('d', t0).verdict).toBe('unknown');
  });
});
