/**
 * A tenant recorded as known (known-tenants.ts) whose store is gone: its directory is missing,
 * or is there but holds neither a log segment nor a snapshot. Its acknowledged history is
 * somewhere else (an unmounted volume, a backup) or lost; either way an operator decides, so the
 * open is refused and nothing is created in its place.
 */
import * as path from 'node:path';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { listSegments } from '../../storage/log/recovery.js';
import { listSnapshots } from '../../storage/snapshot/reader.js';
import { vanishedStoreCode } from '../../storage/audit/store-cross-check.js';

export class VanishedStore extends Error {
  readonly code = vanishedStoreCode;
  constructor(
    readonly tenant: string,
    readonly dir: string,
    readonly why: 'directory missing' | 'no log or snapshot in it',
    /** ` --data-dir D` for the commands the hint names, in an operator's command (cli-data-dir.ts); never in a caller's hint. */
    private readonly dataDirArgument = '',
  ) {
    super(`the store of known tenant ${tenant} has vanished: ${dir}: ${why}`);
    this.name = 'VanishedStore';
  }

  /** What an operator runs: the same words for the caller's hint and the CLI. */
  get hint(): string {
    return `restore it from a backup (\`ioboxx-memory restore BACKUP_DIR ${this.tenant}${this.dataDirArgument}\`), or, to start ${this.tenant} over empty, \`ioboxx-memory tenants forget ${this.tenant} --yes${this.dataDirArgument}\``;
  }
}

/** True when `dir` holds a store: at least one log segment or one snapshot directory. */
export async function holdsStore(dir: string): Promise<boolean> {
  const fl = nodeFileLayer;
  return (await listSegments(path.join(dir, 'log'), fl)).length > 0 || (await listSnapshots(dir, fl)).length > 0;
}
