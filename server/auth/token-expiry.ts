/**
 * What a long-lived connection does when the access token that let it in expires: an event
 * stream or a WebSocket must not outlive the token (a role or membership removed in Keycloak
 * would otherwise go on hearing the tenant's changes). Local mode has no token and no expiry.
 */
import type { Principal } from './principal.js';

/** setTimeout's longest delay; a later deadline is waited in steps. */
const timerMsMax = 2_147_483_647;

/** When the principal's token expires (ms since the epoch), or undefined for local mode. */
export function tokenExpiresAtMsOf(principal: Principal): number | undefined {
  const expiresAtMs = (principal as Principal & { tokenExpiresAtMs?: unknown }).tokenExpiresAtMs;
  return typeof expiresAtMs === 'number' ? expiresAtMs : undefined;
}

/**
 * Calls `expired` once the time is past `deadlineMs()`, read again when the timer fires (a
 * fresher token may have moved it later). Returns the cancel.
 */
export function whenTokenExpires(deadlineMs: () => number, expired: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    timer = setTimeout(() => (Date.now() >= deadlineMs() ? expired() : arm()), Math.max(0, Math.min(timerMsMax, deadlineMs() - Date.now())));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
