/**
 * The issuer's keys while the issuer cannot be reached. jose's remote key set refetches once its
 * keys are older than jwksCacheMaxAgeMs; when that fetch failed, every request failed with it
 * (503), each after waiting the whole fetch timeout, even for a token verified a minute before.
 * Here a failed fetch falls back to the last key set that loaded, for at most jwksStaleMaxAgeMs
 * after it loaded, and for jwksRetryMs after a failure the issuer is not asked again: requests
 * go straight to the last keys instead of each waiting for a fetch that will time out. With no
 * keys to stand in, requests fail for jwksRetryMs after a failed fetch, again without asking.
 * A token whose key is not in that set is still refused (unknown key), never let through.
 */
import { createLocalJWKSet, type JWTVerifyGetKey } from 'jose';
import type { LoadedKeys } from './verified-token-cache.js';

/** How long after they loaded the last keys still verify tokens while the issuer is unreachable. */
export const jwksStaleMaxAgeMsDefault = 60 * 60_000;
/** After a failed key fetch, the issuer is not asked again for this long. */
export const jwksRetryMsDefault = 30_000;

export interface StaleKeyOptions {
  readonly staleMaxAgeMs: number;
  readonly retryMs: number;
  /** Whether an error of the remote set means the issuer could not be reached (then the last keys serve). */
  readonly isFetchFailure: (error: unknown) => boolean;
  readonly nowMs?: () => number;
  /** Told each time a fetch fails as isFetchFailure says (at most once per retryMs). */
  readonly onFetchFailure?: (error: unknown) => void;
  /** Told each time a request is served from the last keys. */
  readonly onFallback?: (keysAgeMs: number) => void;
}

export function withStaleKeyFallback(remote: JWTVerifyGetKey, loaded: LoadedKeys, options: StaleKeyOptions): JWTVerifyGetKey {
  const now = options.nowMs ?? Date.now;
  let failed: { readonly atMs: number; readonly error: unknown } | undefined;
  let local: { readonly uat: number; readonly getKey: JWTVerifyGetKey } | undefined;
  /** The set that loaded last, while young enough to stand in for the issuer. */
  const lastKeys = (): JWTVerifyGetKey | undefined => {
    const { jwks, uat } = loaded;
    if (jwks === undefined || uat === undefined || now() - uat > options.staleMaxAgeMs) return undefined;
    if (local?.uat !== uat) local = { uat, getKey: createLocalJWKSet(jwks) };
    return local.getKey;
  };
  const fromLastKeys = (getKey: JWTVerifyGetKey, ...args: Parameters<JWTVerifyGetKey>) => {
    options.onFallback?.(now() - loaded.uat!);
    return getKey(...args);
  };
  return async (...args) => {
    const fallback = lastKeys();
    if (failed !== undefined && now() - failed.atMs < options.retryMs) {
      if (fallback !== undefined) return fromLastKeys(fallback, ...args);
      // No keys to stand in (none loaded yet, or too old): the request fails as the last fetch did,
      // without asking again; asked on every request, anyone's flood of tokens hammered the issuer.
      throw failed.error;
    }
    try {
      const key = await remote(...args);
      failed = undefined;
      return key;
    } catch (error) {
      if (!options.isFetchFailure(error)) throw error;
      failed = { atMs: now(), error };
      options.onFetchFailure?.(error);
      if (fallback === undefined) throw error;
      return fromLastKeys(fallback, ...args);
    }
  };
}
