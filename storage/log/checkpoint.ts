/**
 * The clean-close checkpoint, `log/checkpoint.json`: the last offset and the state hash there,
 * written by Store.close. The open checks the recovered state against it (store.ts); repair moves
 * it aside when the log no longer reaches it (repair.ts).
 */
import * as path from 'node:path';
import type { FileLayer } from '../io/file-layer.js';
import { readBoundedFile } from '../io/read-whole.js';

export const checkpointFileName = 'checkpoint.json';
/** A checkpoint is an offset and a hash (~100 bytes): a larger file is not one. */
export const checkpointBytesMax = 64 * 1024;

export interface Checkpoint {
  readonly offset: number;
  readonly stateHash: string;
}

/** The checkpoint in `logDir`: undefined when there is none, 'unreadable' when the file does not parse as one. */
export async function readCheckpoint(logDir: string, fl: FileLayer): Promise<Checkpoint | 'unreadable' | undefined> {
  const file = path.join(logDir, checkpointFileName);
  if (!(await fl.exists(file))) return undefined;
  try {
    const parsed = JSON.parse((await readBoundedFile(fl, file, checkpointBytesMax, 'checkpointBytesMax')).toString('utf8')) as Partial<Checkpoint>;
    if (Number.isSafeInteger(parsed.offset) && typeof parsed.stateHash === 'string') return { offset: parsed.offset!, stateHash: parsed.stateHash };
  } catch {
    // not JSON, or too large to be one: unreadable, below
  }
  return 'unreadable';
}
