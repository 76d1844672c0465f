/**
 * Access-token verification with `jose` against the issuer's JWKS.
 *
 * - Keys: the JWKS URL comes from OpenID discovery (once, retried after a failure cooldown) and
 *   is served by jose's remote key set: cached for `jwksCacheMaxAgeMs`, and a token whose `kid`
 *   is unknown triggers one refetch, at most once per `jwksCooldownMs` (so a flood of forged
 *   kids costs the issuer one request per cooldown, and a key rotation is picked up at once
 *   when the cooldown has passed since the last fetch). While the issuer cannot be reached the
 *   last keys still serve, for a bounded time (stale-key-fallback.ts).
 * - Algorithms are pinned (RS256 unless configured): `none`, HS256 and friends never reach a key.
 * - `exp`, `iss`, `aud` and `sub` are required; `iss` and `aud` must match the configuration.
 * - Only access tokens: Keycloak puts `typ: "Bearer"` in the payload of those; refresh (`Refresh`),
 *   ID (`ID`) and logout tokens, and tokens with no `typ`, are refused.
 *
 * - Verified tokens are remembered (by SHA-256, never the token itself), see
 *   verified-token-cache.ts: `exp` and `nbf` are still checked on every use, a verification is
 *   redone after `verifiedTokenTtlMs`, and one made with a key the issuer stops publishing is
 *   dropped as soon as the key set is reloaded.
 * - A connection that presents the byte-identical token again skips its shape check and hash
 *   (connection-token-memo.ts); every other rule above still applies to that request.
 *
 * Errors are AuthError with a reason code. Neither the token nor its claims are ever put in a
 * message (jose's claim errors carry the payload, so they are never passed on as a cause).
 */
import { createRemoteJWKSet, errors as joseErrors, jwksCache, jwtVerify, type JWKSCacheInput, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { AuthError, type AuthFailureReason } from './auth-error.js';
import { assertFetchableUrl, discoverIssuer } from './oidc-discovery.js';
import { ConnectionTokenMemo, type TokenConnection } from './connection-token-memo.js';
import { jwksRetryMsDefault, jwksStaleMaxAgeMsDefault, withStaleKeyFallback } from './stale-key-fallback.js';
import { VerifiedTokenCache, verifiedTokensMaxDefault, verifiedTokenTtlMsDefault, type LoadedKeys } from './verified-token-cache.js';

export const signingAlgorithms = ['RS256', 'ES256', 'PS256'] as const;
export type SigningAlgorithm = (typeof signingAlgorithms)[number];

/** Keycloak tokens with many roles reach a few KiB; Node's whole header block defaults to 16 KiB. */
export const tokenCharsMax = 16 * 1024;
export const subjectCharsMax = 255;
export const clockToleranceSMax = 300;
export const clockToleranceSDefault = 5;
/**
 * A token is refused this long after its `iat`, whatever its `exp` says (a misconfigured issuer's
 * years-long tokens, a stolen one replayed): Keycloak's access tokens live minutes. A token
 * without `iat`, or issued in the future (past the clock tolerance), is refused too.
 */
export const tokenAgeSMax = 24 * 60 * 60;
/** A forged-kid flood costs the issuer one request per cooldown; a fresh key is blind at most this long. */
export const jwksCooldownMsDefault = 10_000;
export const jwksCacheMaxAgeMsDefault = 10 * 60_000;
export const fetchTimeoutMsDefault = 5_000;
/** After a failed discovery, requests fail fast for this long instead of hammering the issuer. */
export const discoveryRetryMsDefault = 5_000;

/** Keycloak's payload `typ` for access tokens. */
export const accessTokenType = 'Bearer';

export interface TokenVerifierOptions {
  /** Exactly as the tokens' `iss` says, e.g. https://id.example.com/realms/ioboxx. */
  readonly issuer: string;
  /** A token is accepted when its `aud` contains any of these. */
  readonly audience: readonly string[];
  readonly algorithms?: readonly SigningAlgorithm[];
  readonly clockToleranceS?: number;
  readonly jwksCooldownMs?: number;
  readonly jwksCacheMaxAgeMs?: number;
  /** While the issuer cannot be reached, the last keys verify tokens for this long after they loaded (stale-key-fallback.ts). */
  readonly jwksStaleMaxAgeMs?: number;
  /** After a failed key fetch, the issuer is not asked again for this long. */
  readonly jwksRetryMs?: number;
  readonly fetchTimeoutMs?: number;
  readonly discoveryRetryMs?: number;
  /** Accept http issuer / JWKS URLs on non-loopback hosts. */
  readonly allowHttp?: boolean;
  /**
   * Told each time asking the issuer failed (its discovery, its keys), with what went wrong: the
   * operator's only sign of an issuer that is down or misconfigured, since callers get the 503.
   * Once per attempt, and attempts are spaced by discoveryRetryMs and jwksRetryMs, not per request.
   */
  readonly onIssuerUnavailable?: (problem: string) => void;
  /** Remembered verifications (0 disables remembering). */
  readonly verifiedTokensMax?: number;
  /** A remembered verification is redone after this long. */
  readonly verifiedTokenTtlMs?: number;
}

export interface VerifiedAccessToken {
  /** Signature, issuer, audience, lifetime and type verified. */
  readonly claims: JWTPayload;
  readonly subject: string;
  readonly expiresAtMs: number;
  readonly keyId: string | undefined;
  readonly algorithm: SigningAlgorithm;
}

export interface TokenVerifier {
  readonly issuer: string;
  readonly audience: readonly string[];
  /**
   * Throws AuthError. `connection`: the connection the token came on (an HTTP request's socket),
   * so that the same token presented again on it is not hashed again.
   */
  verify(token: string, connection?: TokenConnection): Promise<VerifiedAccessToken>;
  /** The token each open connection presented last (for tests and metrics). */
  readonly presentedTokens: ConnectionTokenMemo;
}

/** Three base64url segments; the signature may be empty so that `alg: none` is refused by name. */
const compactJwsPattern = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const issuer = options.issuer;
  const audience = [...options.audience];
  const algorithms = [...(options.algorithms ?? ['RS256'])];
  const clockToleranceS = options.clockToleranceS ?? clockToleranceSDefault;
  const fetchTimeoutMs = options.fetchTimeoutMs ?? fetchTimeoutMsDefault;
  const discoveryRetryMs = options.discoveryRetryMs ?? discoveryRetryMsDefault;
  const allowHttp = options.allowHttp ?? false;
  assertVerifierOptions(issuer, audience, algorithms, clockToleranceS, allowHttp);

  const jwksCacheMaxAgeMs = options.jwksCacheMaxAgeMs ?? jwksCacheMaxAgeMsDefault;
  // jose writes the key set it loaded (and when) into this object, in place, on every load.
  const loadedKeys: LoadedKeys = {};
  const remembered = new VerifiedTokenCache<VerifiedAccessToken>({
    entriesMax: options.verifiedTokensMax ?? verifiedTokensMaxDefault,
    ttlMs: Math.min(options.verifiedTokenTtlMs ?? verifiedTokenTtlMsDefault, jwksCacheMaxAgeMs),
    clockToleranceMs: clockToleranceS * 1000,
    keysMaxAgeMs: jwksCacheMaxAgeMs,
    keys: loadedKeys,
  });
  const presentedTokens = new ConnectionTokenMemo();
  let keySet: Promise<JWTVerifyGetKey> | undefined;
  let discoveryFailure: { readonly atMs: number; readonly error: AuthError } | undefined;

  function keys(): Promise<JWTVerifyGetKey> {
    if (keySet) return keySet;
    if (discoveryFailure && Date.now() - discoveryFailure.atMs < discoveryRetryMs) {
      return Promise.reject(discoveryFailure.error);
    }
    const discovering = discoverIssuer(issuer, { timeoutMs: fetchTimeoutMs, allowHttp }).then(
      (discovered) =>
        withStaleKeyFallback(createRemoteJWKSet(discovered.jwksUri, {
          cooldownDuration: options.jwksCooldownMs ?? jwksCooldownMsDefault,
          cacheMaxAge: jwksCacheMaxAgeMs,
          timeoutDuration: fetchTimeoutMs,
          [jwksCache]: loadedKeys as JWKSCacheInput,
        }), loadedKeys, {
          staleMaxAgeMs: options.jwksStaleMaxAgeMs ?? jwksStaleMaxAgeMsDefault,
          retryMs: options.jwksRetryMs ?? jwksRetryMsDefault,
          isFetchFailure: (error) => authErrorFromJose(error).reason === 'issuer_unavailable',
          onFetchFailure: (error) => options.onIssuerUnavailable?.(`${authErrorFromJose(error).message} at ${discovered.jwksUri.href}: ${fetchProblemOf(error)}`),
        }),
      (error: unknown) => {
        keySet = undefined;
        const authError = error instanceof AuthError ? error : new AuthError('issuer_unavailable', 'OpenID discovery failed');
        discoveryFailure = { atMs: Date.now(), error: authError };
        options.onIssuerUnavailable?.(authError.message);
        throw authError;
      },
    );
    keySet = discovering;
    return discovering;
  }

  async function verify(token: string, connection?: TokenConnection): Promise<VerifiedAccessToken> {
    // The same string this connection presented and we hashed before: already checked below.
    const presentedDigest = connection === undefined ? undefined : presentedTokens.digestOf(connection, token);
    let digest = presentedDigest;
    if (digest === undefined) {
      if (typeof token !== 'string' || token.length === 0) {
        throw new AuthError('missing_token', 'no access token');
      }
      if (token.length > tokenCharsMax) {
        throw new AuthError('token_too_large', `access token longer than ${tokenCharsMax} characters`);
      }
      if (!compactJwsPattern.test(token)) {
        throw new AuthError('malformed', 'access token is not a compact JWS');
      }
      digest = remembered.enabled ? remembered.digestOf(token) : undefined;
    }
    if (digest !== undefined) {
      const recalled = remembered.recall(digest, Date.now());
      if (recalled.verdict === 'valid') {
        if (connection !== undefined && presentedDigest === undefined) presentedTokens.remember(connection, token, digest);
        return recalled.result;
      }
      if (recalled.verdict === 'expired') throw new AuthError('expired', 'access token expired');
      if (recalled.verdict === 'not_yet_valid') throw new AuthError('not_yet_valid', 'access token not yet valid (nbf)');
    }
    const getKey = await keys();
    let verified: Awaited<ReturnType<typeof jwtVerify>>;
    try {
      verified = await jwtVerify(token, getKey, {
        issuer,
        audience,
        algorithms,
        clockTolerance: clockToleranceS,
        maxTokenAge: tokenAgeSMax,
        requiredClaims: ['exp', 'iss', 'aud', 'sub', 'iat'],
      });
    } catch (error) {
      throw authErrorFromJose(error);
    }
    const { payload, protectedHeader } = verified;
    if (payload.typ !== accessTokenType) {
      throw new AuthError(
        'wrong_token_type',
        `token type ${typeof payload.typ === 'string' ? JSON.stringify(payload.typ.slice(0, 32)) : 'missing'}; only access tokens (typ "Bearer") are accepted`,
      );
    }
    const subject = payload.sub;
    if (typeof subject !== 'string' || subject.length === 0 || subject.length > subjectCharsMax) {
      throw new AuthError('malformed_claims', `sub must be a string of 1-${subjectCharsMax} characters`);
    }
    // jose checked exp is present and a number.
    const result: VerifiedAccessToken = Object.freeze({
      // Frozen: a remembered verification is shared by every request carrying the token.
      claims: deepFreeze(payload),
      subject,
      expiresAtMs: (payload.exp as number) * 1000,
      keyId: protectedHeader.kid,
      algorithm: protectedHeader.alg as SigningAlgorithm,
    });
    // A token without kid is matched to a key by jose alone: not remembered (Keycloak always sets kid).
    if (digest !== undefined && typeof protectedHeader.kid === 'string') {
      const notBeforeMs = typeof payload.nbf === 'number' ? payload.nbf * 1000 : undefined;
      remembered.remember(digest, result, { keyId: protectedHeader.kid, expiresAtMs: result.expiresAtMs, notBeforeMs }, Date.now());
      if (connection !== undefined && presentedDigest === undefined) presentedTokens.remember(connection, token, digest);
    }
    return result;
  }

  return { issuer, audience, verify, presentedTokens };
}

/** What a failed key fetch met (a status, a timeout, a refused connection): jose's words and the network's code. */
function fetchProblemOf(error: unknown): string {
  const code = ((error as { cause?: { code?: unknown } }).cause)?.code;
  return `${(error as Error).message}${typeof code === 'string' ? ` (${code})` : ''}`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The issuer as the verifier fetches it: a URL, https (or http on loopback / when allowed), no query or fragment. `name` says where it was set. */
export function assertIssuerUrl(issuer: string, allowHttp: boolean, name: string): void {
  let issuerUrl: URL;
  try {
    issuerUrl = new URL(issuer);
  } catch {
    throw new AuthError('issuer_unavailable', `${name} ${issuer} is not a URL`);
  }
  assertFetchableUrl(issuerUrl, allowHttp, name);
  if (issuerUrl.search !== '' || issuerUrl.hash !== '') {
    throw new AuthError('issuer_unavailable', `${name} must not carry a query or fragment`);
  }
}

function assertVerifierOptions(
  issuer: string,
  audience: readonly string[],
  algorithms: readonly string[],
  clockToleranceS: number,
  allowHttp: boolean,
): void {
  assertIssuerUrl(issuer, allowHttp, 'OIDC issuer');
  if (audience.length === 0 || audience.some((value) => value.length === 0)) {
    throw new AuthError('wrong_audience', 'at least one non-empty expected audience must be configured');
  }
  if (algorithms.length === 0 || algorithms.some((alg) => !(signingAlgorithms as readonly string[]).includes(alg))) {
    throw new AuthError('disallowed_algorithm', `algorithms must be a non-empty subset of ${signingAlgorithms.join(', ')}`);
  }
  if (!(Number.isFinite(clockToleranceS) && clockToleranceS >= 0 && clockToleranceS <= clockToleranceSMax)) {
    throw new AuthError('malformed', `clock tolerance must be 0-${clockToleranceSMax} seconds`);
  }
}

/** jose's error codes to our reasons; the jose error is not kept (its claim errors carry the payload). */
function authErrorFromJose(error: unknown): AuthError {
  const code = (error as { code?: unknown }).code;
  const reasonAndMessage = ((): [AuthFailureReason, string] => {
    switch (code) {
      case joseErrors.JWTExpired.code:
        if ((error as InstanceType<typeof joseErrors.JWTExpired>).claim === 'iat') return ['expired', `access token issued more than ${tokenAgeSMax} s ago (tokenAgeSMax)`];
        return ['expired', 'access token expired'];
      case joseErrors.JWTClaimValidationFailed.code: {
        const { claim, reason } = error as InstanceType<typeof joseErrors.JWTClaimValidationFailed>;
        if (claim === 'nbf') return ['not_yet_valid', 'access token not yet valid (nbf)'];
        if (claim === 'iat' && reason === 'check_failed') return ['not_yet_valid', "access token issued in the future (iat): the issuer's clock and this server's differ"];
        if (claim === 'iss') return ['wrong_issuer', 'access token from an unexpected issuer'];
        if (claim === 'aud') return ['wrong_audience', `access token not issued for this resource (aud ${reason})`];
        if (reason === 'missing') return ['missing_claim', `access token lacks the required claim ${claim}`];
        return ['malformed_claims', `access token claim ${claim} is invalid`];
      }
      case joseErrors.JWSSignatureVerificationFailed.code:
        return ['bad_signature', 'access token signature does not verify'];
      case joseErrors.JOSEAlgNotAllowed.code:
        return ['disallowed_algorithm', 'access token signed with an algorithm that is not accepted'];
      case joseErrors.JWKSNoMatchingKey.code:
        return ['unknown_key', 'access token signed with a key the issuer does not publish'];
      case joseErrors.JWKSMultipleMatchingKeys.code:
        return ['unknown_key', 'access token names no key id and the issuer publishes several keys'];
      case joseErrors.JWKSTimeout.code:
        return ['issuer_unavailable', 'fetching the issuer keys timed out'];
      case joseErrors.JWKSInvalid.code:
        return ['issuer_unavailable', 'the issuer published an invalid key set'];
      case joseErrors.JOSEError.code:
        // jose's generic error comes from the JWKS fetch (non-200 answer).
        return ['issuer_unavailable', 'fetching the issuer keys failed'];
      case joseErrors.JWSInvalid.code:
      case joseErrors.JWTInvalid.code:
      case joseErrors.JOSENotSupported.code:
      case joseErrors.JWKInvalid.code:
        return ['malformed', 'access token is malformed'];
      default:
        if (error instanceof TypeError && error.message === 'fetch failed') {
          return ['issuer_unavailable', 'fetching the issuer keys failed'];
        }
        // Fail closed on anything unforeseen; the message stays generic on purpose.
        return ['malformed', 'access token could not be verified'];
    }
  })();
  return new AuthError(reasonAndMessage[0], reasonAndMessage[1]);
}
