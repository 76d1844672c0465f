import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { AuthError, type AuthFailureReason } from '../../server/auth/auth-error.js';
import { createTokenVerifier, tokenAgeSMax, tokenCharsMax, type TokenVerifierOptions } from '../../server/auth/token-verifier.js';
import { startOidcIssuer, tamperPayload, testAudience, type OidcIssuerProcess } from '../support/oidc-issuer.js';

let idp: OidcIssuerProcess;

beforeAll(async () => {
  idp = await startOidcIssuer({ realms: ['ioboxx', 'other', 'rotation', 'retire', 'flood', 'cache', 'removed', 'kept', 'aged', 'aged-removed', 'keys-down'] });
});
afterAll(async () => {
  await idp?.stop();
});
afterEach(() => {
  vi.useRealTimers();
});

function verifierFor(options: Partial<TokenVerifierOptions> & { realm?: string } = {}) {
  const { realm, ...rest } = options;
  return createTokenVerifier({ issuer: idp.issuer(realm), audience: [testAudience], ...rest });
}

async function refusal(promise: Promise<unknown>): Promise<AuthFailureReason> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, 'the token was accepted').toBeInstanceOf(AuthError);
  return (error as AuthError).reason;
}

const nowS = () => Math.floor(Date.now() / 1000);

describe('token verification against a real issuer process', () => {
  test('a valid Keycloak access token verifies and yields its subject and expiry', async () => {
    const token = await idp.token({ subject: 'user-42', ttlS: 120 });
    const verified = await verifierFor().verify(token);
    expect(verified.subject).toBe('user-42');
    expect(verified.algorithm).toBe('RS256');
    expect(verified.claims.iss).toBe(idp.issuer());
    expect(verified.expiresAtMs).toBe((verified.claims.exp as number) * 1000);
  });

  test('an expired token is refused as expired', async () => {
    const token = await idp.token({ ttlS: -60 });
    expect(await refusal(verifierFor().verify(token))).toBe('expired');
  });

  test('the clock tolerance admits a token that expired moments ago, and only within it', async () => {
    const token = await idp.token({ claims: { exp: nowS() - 2 } });
    await expect(verifierFor({ clockToleranceS: 60 }).verify(token)).resolves.toBeDefined();
    expect(await refusal(verifierFor({ clockToleranceS: 0 }).verify(token))).toBe('expired');
  });

  test('a token whose nbf is in the future is refused as not yet valid', async () => {
    const token = await idp.token({ claims: { nbf: nowS() + 120 } });
    expect(await refusal(verifierFor().verify(token))).toBe('not_yet_valid');
  });

  test('a token issued in the future, one issued more than tokenAgeSMax ago whatever its exp, and one without iat are refused', async () => {
    const future = await idp.token({ claims: { iat: nowS() + 120 } });
    expect(await refusal(verifierFor().verify(future))).toBe('not_yet_valid');
    const old = await idp.token({ claims: { iat: nowS() - tokenAgeSMax - 60, exp: nowS() + 10 * 365 * 86_400 } });
    expect(await refusal(verifierFor().verify(old))).toBe('expired');
    const noIat = await idp.token({ claims: { iat: null } });
    expect(await refusal(verifierFor().verify(noIat))).toBe('missing_claim');
    // Issued moments ahead of this clock, within the tolerance: accepted.
    await expect(verifierFor({ clockToleranceS: 60 }).verify(await idp.token({ claims: { iat: nowS() + 30 } }))).resolves.toBeDefined();
  });

  test('a token without exp is refused', async () => {
    const token = await idp.token({ claims: { exp: null } });
    expect(await refusal(verifierFor().verify(token))).toBe('missing_claim');
  });

  test('a token signed by the right key but naming another issuer is refused', async () => {
    const token = await idp.token({ claims: { iss: idp.issuer('other') } });
    expect(await refusal(verifierFor().verify(token))).toBe('wrong_issuer');
  });

  test("another realm's token is refused: its key is not this realm's", async () => {
    const token = await idp.token({ realm: 'other' });
    expect(await refusal(verifierFor().verify(token))).toBe('unknown_key');
  });

  test('a token for another audience, or with no audience, is refused', async () => {
    const other = await idp.token({ audience: ['account', 'another-service'] });
    const none = await idp.token({ audience: null });
    expect(await refusal(verifierFor().verify(other))).toBe('wrong_audience');
    expect(await refusal(verifierFor().verify(none))).toBe('wrong_audience');
  });

  test('a single-string aud is accepted like a list', async () => {
    const token = await idp.token({ audience: testAudience });
    await expect(verifierFor().verify(token)).resolves.toBeDefined();
  });

  test('alg none is refused', async () => {
    const token = await idp.token({ alg: 'none' });
    expect(token.endsWith('.')).toBe(true);
    expect(await refusal(verifierFor().verify(token))).toBe('disallowed_algorithm');
  });

  test('HS256 keyed with the public key (algorithm confusion) is refused', async () => {
    const token = await idp.token({ alg: 'HS256-public-key' });
    expect(await refusal(verifierFor().verify(token))).toBe('disallowed_algorithm');
  });

  test('algorithms are pinned: ES256 and PS256 only when configured', async () => {
    const es = await idp.token({ alg: 'ES256' });
    const ps = await idp.token({ alg: 'PS256' });
    expect(await refusal(verifierFor().verify(es))).toBe('disallowed_algorithm');
    expect(await refusal(verifierFor().verify(ps))).toBe('disallowed_algorithm');
    const both = verifierFor({ algorithms: ['ES256', 'PS256'] });
    expect((await both.verify(es)).algorithm).toBe('ES256');
    expect((await both.verify(ps)).algorithm).toBe('PS256');
    const rs = await idp.token();
    expect(await refusal(both.verify(rs))).toBe('disallowed_algorithm');
  });

  test('a tampered payload is refused as a bad signature', async () => {
    const token = await idp.token({ subject: 'reader', realmRoles: ['memory-reader'] });
    const forged = tamperPayload(token, { sub: 'admin', realm_access: { roles: ['memory-admin'] } });
    expect(await refusal(verifierFor().verify(forged))).toBe('bad_signature');
  });

  test('refresh tokens, ID tokens and tokens without typ are refused', async () => {
    const verifier = verifierFor();
    for (const tokenType of ['Refresh', 'ID', 'Logout', null] as const) {
      const token = await idp.token({ tokenType });
      expect(await refusal(verifier.verify(token)), `typ ${tokenType}`).toBe('wrong_token_type');
    }
  });

  test('malformed and oversized tokens are refused before any key lookup', async () => {
    const verifier = verifierFor();
    for (const token of ['abc', 'a.b', 'a.b.c.d.e', 'eyJ.eyJ.sig!']) {
      expect(await refusal(verifier.verify(token)), token).toBe('malformed');
    }
    expect(await refusal(verifier.verify(`${'a'.repeat(tokenCharsMax)}.b.c`))).toBe('token_too_large');
    expect(await refusal(verifier.verify(''))).toBe('missing_token');
  });

  test('a token signed with a key the issuer never published is refused as unknown_key', async () => {
    const token = await idp.token({ unpublishedKey: true });
    expect(await refusal(verifierFor().verify(token))).toBe('unknown_key');
  });

  test('a flood of unknown kids costs the issuer at most one JWKS refetch per cooldown', async () => {
    const verifier = verifierFor({ realm: 'flood' });
    await verifier.verify(await idp.token({ realm: 'flood' }));
    const before = await idp.stats('flood');
    const forged = await Promise.all(Array.from({ length: 20 }, () => idp.token({ realm: 'flood', unpublishedKey: true })));
    const reasons = await Promise.all(forged.map((token) => refusal(verifier.verify(token))));
    expect(new Set(reasons)).toEqual(new Set(['unknown_key']));
    const after = await idp.stats('flood');
    expect(after.jwksFetches - before.jwksFetches).toBeLessThanOrEqual(1);
    expect(after.discoveryFetches).toBe(before.discoveryFetches);
  });

  test('with the cooldown passed, one unknown kid triggers exactly one refetch', async () => {
    const verifier = verifierFor({ realm: 'flood', jwksCooldownMs: 0 });
    await verifier.verify(await idp.token({ realm: 'flood' }));
    const before = await idp.stats('flood');
    expect(await refusal(verifier.verify(await idp.token({ realm: 'flood', unpublishedKey: true })))).toBe('unknown_key');
    const after = await idp.stats('flood');
    expect(after.jwksFetches - before.jwksFetches).toBe(1);
  });

  test('key rotation: old tokens keep working, new ones verify after one refetch', async () => {
    const verifier = verifierFor({ realm: 'rotation', jwksCooldownMs: 0, verifiedTokensMax: 0 });
    const oldToken = await idp.token({ realm: 'rotation' });
    await verifier.verify(oldToken);
    const fetchesBefore = (await idp.stats('rotation')).jwksFetches;

    const { kid, retiredKid } = await idp.rotate({ realm: 'rotation', keepOld: true });
    const newToken = await idp.token({ realm: 'rotation' });
    expect((await verifier.verify(newToken)).keyId).toBe(kid);
    expect((await idp.stats('rotation')).jwksFetches).toBe(fetchesBefore + 1);

    expect((await verifier.verify(oldToken)).keyId).toBe(retiredKid);
    expect((await verifier.verify(await idp.token({ realm: 'rotation', kid: retiredKid }))).keyId).toBe(retiredKid);
    // Both keys are cached now: verifying either costs no fetch.
    expect((await idp.stats('rotation')).jwksFetches).toBe(fetchesBefore + 1);
  });

  test('a key the issuer stopped publishing is refused once the keys are refetched', async () => {
    const verifier = verifierFor({ realm: 'retire', jwksCooldownMs: 0, verifiedTokensMax: 0 });
    await verifier.verify(await idp.token({ realm: 'retire' }));
    const { retiredKid } = await idp.rotate({ realm: 'retire', keepOld: false });
    // The new key's token forces the refetch that drops the retired key.
    await verifier.verify(await idp.token({ realm: 'retire' }));
    const late = await idp.token({ realm: 'retire', kid: retiredKid });
    expect(await refusal(verifier.verify(late))).toBe('unknown_key');
  });

  test('keys are discovered once and cached across verifications', async () => {
    const verifier = verifierFor({ realm: 'other' });
    const before = await idp.stats('other');
    for (let index = 0; index < 5; index += 1) await verifier.verify(await idp.token({ realm: 'other' }));
    const after = await idp.stats('other');
    expect(after.discoveryFetches - before.discoveryFetches).toBe(1);
    expect(after.jwksFetches - before.jwksFetches).toBe(1);
  });

  test('an issuer that cannot be discovered makes verification unavailable, not a bad token', async () => {
    const token = await idp.token();
    expect(await refusal(verifierFor({ realm: 'missing-realm' }).verify(token))).toBe('issuer_unavailable');
  });

  test('an issuer that goes away after discovery makes verification unavailable once the last keys are too old to stand in', async () => {
    const gone = await startOidcIssuer();
    const verifier = createTokenVerifier({ issuer: gone.issuer(), audience: [testAudience], jwksCacheMaxAgeMs: 0, jwksStaleMaxAgeMs: 0, verifiedTokensMax: 0 });
    const token = await gone.token();
    await verifier.verify(token);
    await gone.stop();
    expect(await refusal(verifier.verify(token))).toBe('issuer_unavailable');
  });

  test('while the issuer cannot be reached the last keys verify tokens: one fetch is tried, then none for jwksRetryMs; an unknown key is still refused', async () => {
    const paused = await startOidcIssuer();
    try {
      const verifier = createTokenVerifier({
        issuer: paused.issuer(), audience: [testAudience], jwksCacheMaxAgeMs: 0, fetchTimeoutMs: 300, jwksRetryMs: 60_000, verifiedTokensMax: 0,
      });
      const token = await paused.token();
      await verifier.verify(token); // the keys load
      await paused.rotate(); // a key the verifier has never loaded...
      const unknownKeyToken = await paused.token(); // ...signs this one
      const before = await paused.stats();
      paused.child.kill('SIGSTOP'); // connections are taken, never answered: each fetch would time out
      try {
        for (let i = 0; i < 5; i++) expect((await verifier.verify(token)).subject).toBeTruthy();
        expect(await refusal(verifier.verify(unknownKeyToken))).toBe('unknown_key');
      } finally {
        paused.child.kill('SIGCONT');
      }
      // Only the first verification during the outage asked the issuer (it answers once resumed).
      await vi.waitFor(async () => expect((await paused.stats()).jwksFetches - before.jwksFetches).toBeGreaterThanOrEqual(1));
      await new Promise((resolve) => setTimeout(resolve, 500)); // any other request queued meanwhile is counted by now
      expect((await paused.stats()).jwksFetches - before.jwksFetches).toBe(1);
    } finally {
      await paused.stop();
    }
  });

  test('while the issuer cannot serve its keys and none have loaded yet, a flood of tokens asks it once per jwksRetryMs', async () => {
    await idp.jwksStatus(503, 'keys-down');
    try {
      const verifier = verifierFor({ realm: 'keys-down', jwksRetryMs: 60_000, verifiedTokensMax: 0 });
      const before = await idp.stats('keys-down');
      // Anyone can send well-formed tokens: each one fetched the keys again, back to back.
      for (let i = 0; i < 10; i++) expect(await refusal(verifier.verify(await idp.token({ realm: 'keys-down', unpublishedKey: true })))).toBe('issuer_unavailable');
      expect((await idp.stats('keys-down')).jwksFetches - before.jwksFetches).toBe(1);
    } finally {
      await idp.jwksStatus(200, 'keys-down');
    }
  });

  test('a discovery document naming a different issuer is not trusted', async () => {
    // Same realm, but configured with a trailing slash: discovery answers the slash-less issuer.
    const verifier = createTokenVerifier({ issuer: `${idp.issuer()}/`, audience: [testAudience] });
    expect(await refusal(verifier.verify(await idp.token()))).toBe('issuer_unavailable');
  });

  test('a remembered verification still expires with the token', async () => {
    for (const verifiedTokensMax of [4096, 0]) {
      const verifier = verifierFor({ verifiedTokensMax });
      const token = await idp.token({ ttlS: 60 });
      const first = await verifier.verify(token);
      expect(await verifier.verify(token)).toEqual(first);
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(first.expiresAtMs + 10_000);
      expect(await refusal(verifier.verify(token)), `verifiedTokensMax ${verifiedTokensMax}`).toBe('expired');
      vi.useRealTimers();
    }
  });

  test('verified claims cannot be altered by a consumer', async () => {
    const verifier = verifierFor();
    const token = await idp.token({ realmRoles: ['memory-reader'] });
    const { claims } = await verifier.verify(token);
    expect(() => {
      (claims.realm_access as { roles: string[] }).roles.push('memory-admin');
    }).toThrow(TypeError);
  });

  test('refusal messages never contain the token or its claims', async () => {
    const token = await idp.token({ subject: 'secret-subject-7', ttlS: -60 });
    const error = await verifierFor().verify(token).catch((caught: unknown) => caught as AuthError);
    expect(error).toBeInstanceOf(AuthError);
    const text = `${(error as AuthError).message} ${JSON.stringify(error)} ${String((error as Error).cause ?? '')}`;
    expect(text).not.toContain(token.split('.')[1]);
    expect(text).not.toContain('secret-subject-7');
  });
});

// Remembering a token (verified-token-cache.ts) must never accept what a full verification refuses.
describe('a remembered verification', () => {
  test('is reused for the same token: no key fetch, the same verified result', async () => {
    const verifier = verifierFor({ realm: 'cache' });
    const token = await idp.token({ realm: 'cache' });
    const first = await verifier.verify(token);
    const fetches = await idp.stats('cache');
    for (let i = 0; i < 5; i++) expect(await verifier.verify(token)).toBe(first);
    expect(await idp.stats('cache')).toEqual(fetches);
  });

  test('does not cover a tampered token, whether its signature or its payload was changed', async () => {
    const verifier = verifierFor({ realm: 'cache' });
    const token = await idp.token({ realm: 'cache', realmRoles: ['memory-reader'] });
    await verifier.verify(token);
    // Same header and payload, one character of the signature changed: a long shared prefix.
    const last = token.at(-2) === 'A' ? 'B' : 'A';
    const forgedSignature = `${token.slice(0, -2)}${last}${token.at(-1)}`;
    expect(await refusal(verifier.verify(forgedSignature))).toBe('bad_signature');
    const forgedRoles = tamperPayload(token, { realm_access: { roles: ['memory-admin'] } });
    expect(await refusal(verifier.verify(forgedRoles))).toBe('bad_signature');
    // The genuine token still verifies.
    await expect(verifier.verify(token)).resolves.toBeDefined();
  });

  test('is refused once the token expires while remembered', async () => {
    const verifier = verifierFor({ realm: 'cache', clockToleranceS: 0 });
    const token = await idp.token({ realm: 'cache', ttlS: 30 });
    const first = await verifier.verify(token);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(first.expiresAtMs - 1_000);
    expect(await verifier.verify(token)).toBe(first);
    vi.setSystemTime(first.expiresAtMs);
    expect(await refusal(verifier.verify(token))).toBe('expired');
  });

  test('applies nbf on every use: a clock set back before nbf refuses the token', async () => {
    const verifier = verifierFor({ realm: 'cache', clockToleranceS: 5 });
    const notBeforeS = nowS() - 1;
    const token = await idp.token({ realm: 'cache', claims: { nbf: notBeforeS } });
    await verifier.verify(token);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime((notBeforeS - 60) * 1000);
    expect(await refusal(verifier.verify(token))).toBe('not_yet_valid');
  });

  test('is redone after its time to live: the signature is checked again', async () => {
    const verifier = verifierFor({ realm: 'cache', verifiedTokenTtlMs: 1_000 });
    const token = await idp.token({ realm: 'cache' });
    const first = await verifier.verify(token);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 2_000);
    const second = await verifier.verify(token);
    expect(second).not.toBe(first);
    expect(second).toEqual(first);
  });

  test('ends when the issuer stops publishing its key: refused after the next key reload', async () => {
    const verifier = verifierFor({ realm: 'removed', jwksCooldownMs: 0 });
    const old = await idp.token({ realm: 'removed' });
    await verifier.verify(old);
    await idp.rotate({ realm: 'removed', keepOld: false });
    // A token signed with the new key makes the verifier reload the key set.
    await verifier.verify(await idp.token({ realm: 'removed' }));
    expect(await refusal(verifier.verify(old))).toBe('unknown_key');
  });

  test('survives a rotation that keeps the old key published', async () => {
    const verifier = verifierFor({ realm: 'kept', jwksCooldownMs: 0 });
    const old = await idp.token({ realm: 'kept' });
    const first = await verifier.verify(old);
    await idp.rotate({ realm: 'kept', keepOld: true });
    await verifier.verify(await idp.token({ realm: 'kept' }));
    expect(await verifier.verify(old)).toBe(first);
  });

  test('does not keep the key set from being refreshed: once it is older than its max age, it is refetched', async () => {
    const verifier = verifierFor({ realm: 'aged', jwksCacheMaxAgeMs: 10_000 });
    const token = await idp.token({ realm: 'aged', ttlS: 3_600 });
    await verifier.verify(token);
    const before = await idp.stats('aged');
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 11_000);
    await verifier.verify(token);
    vi.useRealTimers();
    expect((await idp.stats('aged')).jwksFetches).toBe(before.jwksFetches + 1);
  });

  test('a key removed at the issuer is noticed at the key-set refresh, with no other token to trigger it', async () => {
    const verifier = verifierFor({ realm: 'aged-removed', jwksCacheMaxAgeMs: 10_000 });
    const token = await idp.token({ realm: 'aged-removed', ttlS: 3_600 });
    await verifier.verify(token);
    await idp.rotate({ realm: 'aged-removed', keepOld: false });
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 11_000);
    expect(await refusal(verifier.verify(token))).toBe('unknown_key');
  });
});
