/**
 * Why a request was not authenticated or not authorised. Each reason is a stable code, fit to
 * be a metrics label, and decides the HTTP status and the RFC 6750 error code of the answer.
 * Messages never carry a token or its claims: they may be logged and returned to the caller.
 */
import { MemoryError, type MemoryErrorCode } from '../../storage/errors.js';

export const authFailureReasons = [
  // 401 without an error code: no credentials (RFC 6750 §3.1).
  'missing_token',
  // 400 invalid_request: the request itself is malformed.
  'invalid_request',
  'invalid_tenant',
  'tenant_selection_required',
  // 401 invalid_token: the token is not acceptable.
  'malformed',
  'token_too_large',
  'expired',
  'not_yet_valid',
  'bad_signature',
  'disallowed_algorithm',
  'unknown_key',
  'wrong_issuer',
  'wrong_audience',
  'wrong_token_type',
  'missing_claim',
  'malformed_claims',
  // 403 insufficient_scope: a valid token that may not do this.
  'not_a_member',
  'no_tenant',
  'insufficient_capability',
  // 503: the issuer's keys cannot be fetched; the token may well be valid.
  'issuer_unavailable',
] as const;

export type AuthFailureReason = (typeof authFailureReasons)[number];

export type OAuthErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope';

export interface AuthFailureClass {
  readonly status: 400 | 401 | 403 | 503;
  /** RFC 6750 `error` value; absent when the request carried no credentials at all. */
  readonly oauthError?: OAuthErrorCode;
  readonly memoryCode: MemoryErrorCode;
}

export function classifyAuthFailure(reason: AuthFailureReason): AuthFailureClass {
  switch (reason) {
    case 'missing_token':
      return { status: 401, memoryCode: 'unauthenticated' };
    case 'invalid_request':
    case 'invalid_tenant':
    case 'tenant_selection_required':
      return { status: 400, oauthError: 'invalid_request', memoryCode: 'invalid_argument' };
    case 'not_a_member':
    case 'no_tenant':
    case 'insufficient_capability':
      return { status: 403, oauthError: 'insufficient_scope', memoryCode: 'forbidden' };
    case 'issuer_unavailable':
      return { status: 503, memoryCode: 'unavailable' };
    default:
      return { status: 401, oauthError: 'invalid_token', memoryCode: 'unauthenticated' };
  }
}

/** An authentication or authorisation failure; a MemoryError so the MCP layer maps it like any other. */
export class AuthError extends MemoryError {
  readonly status: AuthFailureClass['status'];
  readonly oauthError: OAuthErrorCode | undefined;

  constructor(
    readonly reason: AuthFailureReason,
    message: string,
    hint?: string,
  ) {
    const failureClass = classifyAuthFailure(reason);
    super(failureClass.memoryCode, message, hint);
    this.name = 'AuthError';
    this.status = failureClass.status;
    this.oauthError = failureClass.oauthError;
  }
}
