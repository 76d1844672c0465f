/**
 * The clean-close checkpoint, `log/checkpoint.json`: the last offset and the state hash there,
 * and the store's history with its own SHA-256 (history.ts; absent in checkpoints written before
 * it), written by Store.close. The open checks the recovered state against it (store.ts) and takes
 * the history id back from it when history.json is lost (history-evidence.ts); repair moves it
 * aside when the log no longer reaches it (repair.ts).
 */
import * as path from 'node:path';
import { historyRecord, parseHistoryRecord, type StoreHistory } from '../history.js';
import { DamagedStore } from '../errors.js';
import type { FileLayer } from '../io/file-layer.js';
import { NotARegularFile } from '../io/file-refused.js';
import { readBoundedFile } from '../io/read-whole.js';

export const checkpointFileName = 'checkpoint.json';
/** A checkpoint is an offset, a hash and a history (~2 KB at most): a larger file is not one. */
export const checkpointBytesMax = 64 * 1024;

export interface Checkpoint {
  readonly offset: number;
  readonly stateHash: string;
  readonly history?: StoreHistory;
}

export function encodeCheckpoint(checkpoint: Checkpoint): Buffer {
  const { offset, stateHash, history } = checkpoint;
  return Buffer.from(JSON.stringify({ offset, stateHash, ...(history ? { history: historyRecord(history) } : {}) }));
}

/**
 * The checkpoint in `logDir`: undefined when there is none, 'unreadable' when the file does not parse as one.
 * A directory there is damage the open cannot remove as it removes a bad checkpoint: DamagedStore (`store repair` moves it aside).
 */
export async function readCheckpoint(logDir: string, fl: FileLayer): Promise<Checkpoint | 'unreadable' | undefined> {
  const file = path.join(logDir, checkpointFileName);
  if (!(await fl.exists(file))) return undefined;
  try {
    const parsed = JSON.parse((await readBoundedFile(fl, file, checkpointBytesMax, 'checkpointBytesMax')).toString('utf8')) as Partial<Record<keyof Checkpoint, unknown>>;
    if (!Number.isSafeInteger(parsed.offset) || typeof parsed.stateHash !== 'string') return 'unreadable';
    if (parsed.history === undefined) return { offset: parsed.offset as number, stateHash: parsed.stateHash };
    const history = parseHistoryRecord(parsed.history);
    // A history that does not match its own SHA-256 makes the whole file suspect: read as no checkpoint, like any damaged one.
    if (typeof history === 'string') return 'unreadable';
    return { offset: parsed.offset as number, stateHash: parsed.stateHash, history };
  } catch (error) {
    // A FIFO, socket or device is unreadable like any bad checkpoint (the open removes it); a directory the open cannot remove.
    if (error instanceof NotARegularFile && error.kind === 'a directory') throw new DamagedStore(file, 0, `${error.message}, where the clean-close checkpoint is kept`);
    return 'unreadable'; // not JSON, or too large to be one
  }
}
