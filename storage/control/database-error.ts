/**
 * Which failures of a control-plane call come from the database (away, silent, or refusing the
 * statement): the ones worth retrying later, answered 503 to a webhook sender and `unavailable`
 * to a tool. Anything else is a bug or bad data, and retrying it would fail the same way.
 */
import pg from 'pg';

/** Socket errors of a connection that could not be made or was cut. */
const connectionErrorCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
]);

/** pg and pg-pool report their own connection failures and timeouts by message only (no code). */
const connectionFailureMessages = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Query read timeout/,
  /^Client has encountered a connection error/,
  /^Client was closed/,
  /^Cannot use a pool after calling end/,
];

export function isDatabaseError(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) return true;
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && connectionErrorCodes.has(code)) return true;
  return connectionFailureMessages.some((pattern) => pattern.test(error.message));
}
