/**
 * What a caller is told when its tenant's store cannot be opened (a damaged log, a full or
 * unwritable disk, a lock held by another process): a retryable `unavailable` with a hint, never
 * a bare 500 or `internal`. The details (file, byte, errno, the repair command) go to the
 * operator's log, not to the model.
 */
import * as path from 'node:path';
import { DamagedStore, diskFullHint, MemoryError, StoreLockHeld, TableNotInModule } from '../../storage/errors.js';
import { VanishedStore } from './vanished-store.js';

/**
 * What made an open fail, for the operator's metrics: the errno (ENOSPC, EACCES, ...) or the
 * engine's own code (damaged_store; conflict for a LOCK another process holds); undefined when
 * the error carries neither.
 */
export function storeOpenFailureCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(E[A-Z]+|[a-z_]+)$/.test(code) ? code : undefined;
}

/**
 * A store that cannot be opened for want of disk space (its LOCK, a torn tail's cut, a prepared
 * segment cannot be written): retryable once an operator frees space, and work that waits for
 * the store (the access log's rows) waits for that instead of being dropped.
 */
export class StoreOpenNoRoom extends MemoryError {
  constructor(readonly errno: 'ENOSPC' | 'EDQUOT') {
    super('unavailable', `the tenant's store cannot be opened: the disk is full (${errno}); nothing acknowledged is lost`, diskFullHint);
    this.name = 'StoreOpenNoRoom';
  }
}

/** Refusals no retry mends: an operator must restore, forget or repair the store first. */
const refusalsUntilOperatorActs = new WeakSet<MemoryError>();

/**
 * Whether `error` is a refusal of `storeOpenRefusal` that stands until an operator acts (a
 * known tenant's store vanished, a damaged store), not one a later retry may get past.
 */
export function refusedUntilOperatorActs(error: unknown): boolean {
  return error instanceof MemoryError && refusalsUntilOperatorActs.has(error);
}

export function storeOpenRefusal(error: unknown, dir: string): MemoryError {
  // Retryable refusals and a tenant directory refused as unsafe (a symlink) stay as they are;
  // anything else (a damaged log, ENOSPC, a LOCK another process holds) is the operator's to fix.
  if (error instanceof MemoryError && (error.code === 'unavailable' || error.code === 'busy' || error.code === 'forbidden')) return error;
  // A known tenant's store is gone: retrying cannot help until an operator restores or forgets it.
  if (error instanceof VanishedStore) {
    return untilOperatorActs(new MemoryError('unavailable', `the store of tenant ${error.tenant} is missing from the data directory; it is not recreated empty`, `an operator must ${error.hint}`));
  }
  // Another process serves this store (a stdio server and `serve --http` on one data directory, say).
  if (error instanceof StoreLockHeld) {
    return new MemoryError('unavailable', "the tenant's store is open in another ioboxx-memory process: one process serves a store at a time",
      'stop the other server on this data directory (the server log names its process), or give this one another IOBOXX_DATA_DIR; then retry');
  }
  const code = storeOpenFailureCode(error);
  // A full disk (the open writes its LOCK, cuts a torn tail, prepares a segment): no verify or
  // repair helps, and both would be refused on it too; space is what the operator must give.
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StoreOpenNoRoom(code);
  const why = code !== undefined && /^E[A-Z]+$/.test(code) ? ` (${code})` : '';
  // The store named from the data directory, not by its path on this machine: the caller is no operator of it.
  const refusal = new MemoryError('unavailable', `the tenant's store cannot be opened${why}; the server log says why`,
    `retry later; an operator can run \`ioboxx-memory store verify DATA_DIR/tenants/${path.basename(dir)}\``);
  // A damaged store, or one holding a table this release does not declare (the release before opens it): no retry helps.
  return error instanceof DamagedStore || error instanceof TableNotInModule ? untilOperatorActs(refusal) : refusal;
}

function untilOperatorActs(refusal: MemoryError): MemoryError {
  refusalsUntilOperatorActs.add(refusal);
  return refusal;
}
