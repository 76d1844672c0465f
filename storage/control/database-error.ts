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

/**
 * What an operator does about a Postgres that answered and refused the server (no such database,
 * a bad role or password, a read-only database, another application's tables, a missing
 * privilege): waiting will not fix it.
 * Undefined for anything else (Postgres away or starting up: it may come back by itself).
 */
export function databaseRefusalHint(error: unknown): string | undefined {
  if (!(error instanceof pg.DatabaseError)) return undefined;
  const code = error.code ?? '';
  if (code === '3D000') return 'create that database, or fix the database name in DATABASE_URL (and DATABASE_DIRECT_URL)';
  if (code.startsWith('28')) return 'check the user and password in DATABASE_URL (and DATABASE_DIRECT_URL), and that Postgres lets that user in (pg_hba.conf)';
  if (code === '25006') {
    return 'the database is read-only (a standby, or default_transaction_read_only is on): point DATABASE_URL (and DATABASE_DIRECT_URL) at the primary';
  }
  if (code === '42P07') {
    return 'the database already holds a table the control plane creates, with no record of ioboxx-memory migrating it: DATABASE_URL points at another application\'s database; give ioboxx-memory a database of its own';
  }
  if (code === '42501') return 'grant the DATABASE_URL user what the control plane needs: CREATE on the database\'s public schema (migrations), and its tables';
  return undefined;
}
