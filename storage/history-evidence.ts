/**
 * Where a store's history id survives the loss of history.json (history.ts): every snapshot
 * manifest and the clean-close checkpoint record the history of the store that wrote them, with
 * its own SHA-256. A store whose history.json is gone (deleted by hand, left out of a partial
 * copy, dropped by a file system) while one of those records a history is given that history back
 * by its next writing open, byte for byte, and the open reports the file it came from
 * (OpenReport.historyRecoveredFrom; the server logs a warning naming it).
 *
 * Restored, not refused: the record is the store's own (written by this store, or rewritten by
 * the restore that copied it in, restore.ts) and proves itself by its digest, so putting it back
 * is exactly what the operator's fix would be, and a refusal would keep the tenant out for a file
 * whose content is known. A store with no record (one written before history ids, or one that lost
 * the file before its first snapshot or clean close) is given a new id as before: a new id costs
 * consumers a fresh result, never a wrong resume.
 *
 * Newest first: the checkpoint (written at close, after every snapshot), then the snapshots from
 * the newest. A snapshot the open skipped as damaged still counts: its record is checked by its
 * own digest, not by the state files.
 */
import * as path from 'node:path';
import { readStoreHistory, type StoreHistory } from './history.js';
import type { FileLayer } from './io/file-layer.js';
import { checkpointFileName, readCheckpoint, type Checkpoint } from './log/checkpoint.js';
import { manifestFileName } from './snapshot/manifest.js';
import { listSnapshots } from './snapshot/reader.js';

export interface RecordedHistory {
  readonly history: StoreHistory;
  /** The file it was read from: the checkpoint, or a snapshot's manifest. */
  readonly file: string;
}

/** The newest history `storeDir`'s checkpoint (as the open read it) or snapshot manifests record; undefined when none does. */
export async function recordedHistory(storeDir: string, fl: FileLayer, checkpoint: Checkpoint | undefined): Promise<RecordedHistory | undefined> {
  if (checkpoint?.history) return { history: checkpoint.history, file: path.join(storeDir, 'log', checkpointFileName) };
  for (const ref of await listSnapshots(storeDir, fl)) {
    if (!ref.manifest?.history) continue;
    const { sha256: _digest, ...history } = ref.manifest.history;
    return { history, file: path.join(ref.dir, manifestFileName) };
  }
  return undefined;
}

/**
 * The history an open of `storeDir` would have, read without changing a file (store inspect):
 * history.json's, or, when it is missing, the one the files record (with that file's name);
 * undefined when neither has one (the next writing open gives a new id). A damaged history.json
 * throws DamagedStore, as the open does.
 */
export async function historyOfFiles(storeDir: string, fl: FileLayer): Promise<{ history: StoreHistory; recoveredFrom?: string } | undefined> {
  const history = await readStoreHistory(storeDir, fl);
  if (history) return { history };
  const checkpoint = await readCheckpoint(path.join(storeDir, 'log'), fl);
  const recorded = await recordedHistory(storeDir, fl, typeof checkpoint === 'object' ? checkpoint : undefined);
  return recorded ? { history: recorded.history, recoveredFrom: recorded.file } : undefined;
}
