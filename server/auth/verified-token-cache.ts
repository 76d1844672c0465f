/**
 * Remembered token verifications. A client sends the same access token on every request, and
 * a full verification (SHA-256 + WebCrypto RSA verify, an async thread-pool hop) costs more than
 * the rest of a read; so a verification is remembered and reused while nothing that decided it
 * can have changed. What is kept and when it is dropped:
 *
 * - Key: the token's SHA-256 (base64url). The token itself is never kept; a tampered token (even
 *   one sharing a long prefix with a remembered one) has another digest and is verified afresh.
 * - Time: `exp` and `nbf` are checked on every use, with the verifier's clock tolerance, exactly
 *   as a full verification would (a clock set back makes a token not yet valid again).
 * - Keys: a verification made with key K stays valid only while the issuer still publishes K
 *   with the same key material. Whenever the issuer's key set is reloaded (rotation, unknown
 *   kid, cache age), the next use checks K against the new set; a key removed from the JWKS
 *   (e.g. after a compromise) invalidates every verification made with it. A key set older
 *   than its cache age forces a full verification, so the key set is refreshed just as often
 *   as without this cache.
 * - Age: a verification is redone at least every `ttlMs`, whatever else holds.
 * - Bound: at most `entriesMax` entries; past it the oldest is forgotten.
 * Only successful verifications are remembered; failures are recomputed each time.
 */
import { createHash, hash } from 'node:crypto';
import type { JSONWebKeySet, JWK } from 'jose';

/** Remembered verifications; each costs a few hundred bytes of claims. 0 disables. */
export const verifiedTokensMaxDefault = 4096;
/** A remembered verification is redone (signature and all) after this long. */
export const verifiedTokenTtlMsDefault = 60_000;
export const verifiedTokenTtlMsMax = 60 * 60_000;

/** The issuer's key set as last loaded (jose's exported JWKS cache: `uat` = loaded at). */
export interface LoadedKeys {
  readonly uat?: number;
  readonly jwks?: JSONWebKeySet;
}

export interface RememberedFacts {
  readonly keyId: string;
  readonly expiresAtMs: number;
  readonly notBeforeMs: number | undefined;
}

interface Entry<T> extends RememberedFacts {
  readonly result: T;
  readonly keyMaterial: string;
  readonly verifiedAtMs: number;
  /** `uat` of the key set this entry was last checked against. */
  keysCheckedUat: number;
}

export type Remembered<T> =
  | { readonly verdict: 'valid'; readonly result: T }
  | { readonly verdict: 'expired' | 'not_yet_valid' | 'unknown' };

export interface VerifiedTokenCacheOptions {
  readonly entriesMax: number;
  readonly ttlMs: number;
  readonly clockToleranceMs: number;
  /** jose refetches the key set when it is older than this. */
  readonly keysMaxAgeMs: number;
  /** Read on every use: jose updates it in place on each key-set load. */
  readonly keys: LoadedKeys;
}

/** Node >= 20.12 hashes in one call; older 20.x builds a Hash object. */
const sha256Base64url: (data: string) => string =
  typeof hash === 'function' ? (data) => hash('sha256', data, 'base64url') : (data) => createHash('sha256').update(data).digest('base64url');

export class VerifiedTokenCache<T> {
  // Insertion-ordered: past the bound, the oldest verification is forgotten first.
  private readonly entries = new Map<string, Entry<T>>();
  private publishedFor: JSONWebKeySet | undefined;
  private published = new Map<string, string>();

  constructor(private readonly options: VerifiedTokenCacheOptions) {
    const { entriesMax, ttlMs } = options;
    if (!(Number.isInteger(entriesMax) && entriesMax >= 0)) throw new RangeError(`verifiedTokensMax must be a non-negative integer, got ${entriesMax}`);
    if (!(Number.isFinite(ttlMs) && ttlMs >= 0 && ttlMs <= verifiedTokenTtlMsMax)) {
      throw new RangeError(`verified token TTL must be 0-${verifiedTokenTtlMsMax} ms, got ${ttlMs}`);
    }
  }

  get enabled(): boolean {
    return this.options.entriesMax > 0 && this.options.ttlMs > 0;
  }

  get size(): number {
    return this.entries.size;
  }

  digestOf(token: string): string {
    return sha256Base64url(token);
  }

  /** The remembered verdict for a digest at `nowMs`; 'unknown' means: verify in full. */
  recall(digest: string, nowMs: number): Remembered<T> {
    const entry = this.entries.get(digest);
    if (entry === undefined) return { verdict: 'unknown' };
    const { clockToleranceMs, keysMaxAgeMs, keys } = this.options;
    if (nowMs >= entry.expiresAtMs + clockToleranceMs) {
      this.entries.delete(digest);
      return { verdict: 'expired' };
    }
    if (entry.notBeforeMs !== undefined && nowMs < entry.notBeforeMs - clockToleranceMs) {
      this.entries.delete(digest);
      return { verdict: 'not_yet_valid' };
    }
    if (nowMs >= entry.verifiedAtMs + this.options.ttlMs) {
      this.entries.delete(digest);
      return { verdict: 'unknown' };
    }
    const uat = keys.uat;
    // Keys past their cache age: a full verification makes jose refetch them.
    if (uat === undefined || nowMs >= uat + keysMaxAgeMs) return { verdict: 'unknown' };
    if (uat !== entry.keysCheckedUat) {
      if (this.publishedKeyMaterial(entry.keyId) !== entry.keyMaterial) {
        this.entries.delete(digest);
        return { verdict: 'unknown' };
      }
      entry.keysCheckedUat = uat;
    }
    return { verdict: 'valid', result: entry.result };
  }

  /**
   * Remember a verification just made. Not remembered when the key set loaded now no longer
   * holds the key (a reload raced the verification): the next use verifies in full.
   */
  remember(digest: string, result: T, facts: RememberedFacts, nowMs: number): void {
    if (!this.enabled) return;
    const uat = this.options.keys.uat;
    const keyMaterial = this.publishedKeyMaterial(facts.keyId);
    if (uat === undefined || keyMaterial === undefined) return;
    this.entries.delete(digest);
    if (this.entries.size >= this.options.entriesMax) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(digest, { ...facts, result, keyMaterial, verifiedAtMs: nowMs, keysCheckedUat: uat });
  }

  /** The public key material the loaded key set publishes under `kid` (undefined: not published). */
  private publishedKeyMaterial(kid: string): string | undefined {
    const jwks = this.options.keys.jwks;
    if (jwks !== this.publishedFor) {
      this.publishedFor = jwks;
      this.published = new Map();
      for (const jwk of jwks?.keys ?? []) {
        if (typeof jwk.kid !== 'string') continue;
        // Two keys under one kid: neither can be told apart by kid, so neither is remembered.
        this.published.set(jwk.kid, this.published.has(jwk.kid) ? '' : keyMaterialOf(jwk));
      }
    }
    const material = this.published.get(kid);
    return material === '' ? undefined : material;
  }
}

/** The public part of a JWK that identifies the key (RSA modulus and exponent, EC point). */
function keyMaterialOf(jwk: JWK): string {
  return [jwk.kty, jwk.crv, jwk.n, jwk.e, jwk.x, jwk.y].map((part) => part ?? '').join('.');
}
