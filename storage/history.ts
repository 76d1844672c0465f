/**
 * A store's history identity, `history.json` in the store directory: which line of transactions
 * its offsets belong to. Offsets alone do not say it: a store restored from an older backup (ending
 * at offset E) gives its next transactions the offsets E+1.. that the lost store had given to
 * others. The restore starts a new history (a new id) and records where it left its ancestors, so a
 * consumer holding (history, offset) can tell whether that offset still names the same transaction.
 *
 *   {"format":1,"id":"<32 hex>","origin":"created"|"adopted"|"restored","createdAtMs":…,
 *    "startOffset":N,"ancestors":[{"id":"…","forkOffset":E},…],"sha256":"…"}
 *
 * Rules kept here:
 *  - the id is 128 random bits, written once (tmp + fsync + rename + directory fsync) and never
 *    changed: snapshots, segment rotation, repair and backups leave the file alone (it is outside
 *    log/ and snapshots/);
 *  - it carries its own SHA-256: a flipped digit would otherwise be a valid, different id, i.e. a
 *    new history for the same transactions. A file that does not parse or match is damage: the
 *    open refuses, naming it. Never replaced by a new id behind the operator's back;
 *  - a store with no file is either new (created now) or written by a version before history ids:
 *    it is given a random id at its first writing open ("adopted", the offset it was adopted at).
 *    Random, not derived from the files: a restore by an older version of a backup of the same
 *    store would derive the same id and bring the bug back. A new id costs consumers at most a
 *    fresh result, never a wrong resume;
 *  - `ancestors`: the parent's id and every ancestor it had, each with the last offset this
 *    history shares with it (at most historyAncestorsMax; older ones count as unknown).
 */
import { createHash, randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { z } from 'zod';
import { DamagedStore } from './errors.js';
import type { FileLayer } from './io/file-layer.js';
import { FileRefused } from './io/file-refused.js';
import { readBoundedFile } from './io/read-whole.js';
import { isJsonObject } from './json-object.js';

export const historyFileName = 'history.json';
export const historyFormatVersion = 1;
/** A history file is an id and a few ancestors (~2 KB at most): a larger file is not one. */
export const historyFileBytesMax = 64 * 1024;
/** Ancestors kept: restores of restores chain; past this the oldest count as unknown (a fresh result, never a wrong resume). */
export const historyAncestorsMax = 16;
/** 128 random bits, lowercase hex. */
export const historyIdPattern = /^[0-9a-f]{32}$/;

const historyId = z.string().regex(historyIdPattern);

export const historyAncestorSchema = z.object({
  id: historyId,
  /** The last offset this history shares with that one: offsets after it differ. */
  forkOffset: z.number().int().min(-1),
}).strict();

export const storeHistorySchema = z.object({
  id: historyId,
  /** created: a new store; adopted: a store written before history ids, given one at startOffset; restored: from a backup ending at startOffset - 1. */
  origin: z.enum(['created', 'adopted', 'restored']),
  createdAtMs: z.number().int(),
  startOffset: z.number().int().nonnegative(),
  ancestors: z.array(historyAncestorSchema).max(historyAncestorsMax),
}).strict();

export type StoreHistory = z.infer<typeof storeHistorySchema>;
export type HistoryAncestor = z.infer<typeof historyAncestorSchema>;

export function newHistoryId(): string {
  return randomBytes(16).toString('hex');
}

function historyDigest(history: StoreHistory): string {
  return createHash('sha256').update(JSON.stringify(history)).digest('hex');
}

/** A history with its own SHA-256: history.json's content, and what a snapshot manifest and the clean-close checkpoint record of it (history-evidence.ts). */
export type HistoryRecord = StoreHistory & { readonly sha256: string };

export function historyRecord(history: StoreHistory): HistoryRecord {
  const checked = storeHistorySchema.parse(history); // assert before writing, as the read checks after
  return { ...checked, sha256: historyDigest(checked) };
}

/** The history a record holds, or why it is not one (the reader names the file). */
export function parseHistoryRecord(value: unknown): StoreHistory | string {
  if (!isJsonObject(value)) return 'not a JSON object';
  const { sha256, ...content } = value;
  const checked = storeHistorySchema.safeParse(content);
  if (!checked.success) return `not a history: ${checked.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`;
  if (sha256 !== historyDigest(checked.data)) return 'does not match its own SHA-256: the file is damaged';
  return checked.data;
}

/** A history record inside another file's schema (a snapshot manifest): valid only when it matches its own SHA-256. */
export const historyRecordSchema = z.unknown().transform((value, ctx) => {
  const parsed = parseHistoryRecord(value);
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: `history: ${parsed}` });
    return z.NEVER;
  }
  return historyRecord(parsed);
});

export function encodeHistory(history: StoreHistory): Buffer {
  return Buffer.from(`${JSON.stringify({ format: historyFormatVersion, ...historyRecord(history) }, null, 2)}\n`);
}

/** The history in `storeDir`: undefined when there is no file; DamagedStore when there is one that is not whole. */
export async function readStoreHistory(storeDir: string, fl: FileLayer): Promise<StoreHistory | undefined> {
  const file = path.join(storeDir, historyFileName);
  if (!(await fl.exists(file))) return undefined;
  const damaged = (reason: string) => new DamagedStore(file, 0, reason,
    `put back this store's ${historyFileName} from a copy (\`store inspect\` of a backup's store, or the \`history\` in its backup.json); ` +
    'or move it aside: the next open takes the id back from the newest snapshot manifest or clean-close checkpoint that records it (history-evidence.ts), ' +
    'or, when none does, gives the store a new one (WebSocket clients resuming with the old id then get a fresh result)');
  let parsed: unknown;
  try {
    parsed = JSON.parse((await readBoundedFile(fl, file, historyFileBytesMax, 'historyFileBytesMax')).toString('utf8'));
  } catch (error) {
    if (error instanceof FileRefused || error instanceof SyntaxError) throw damaged(error instanceof SyntaxError ? `not JSON: ${error.message}` : error.message);
    throw error; // EIO and the like: not a verdict on the file
  }
  if (!isJsonObject(parsed)) throw damaged('not a JSON object');
  const { format, ...record } = parsed;
  if (format !== historyFormatVersion) throw damaged(`format ${JSON.stringify(format)} is not ${historyFormatVersion}`);
  const history = parseHistoryRecord(record);
  if (typeof history === 'string') throw damaged(history);
  return history;
}

/** Write `history` as `storeDir`'s history file, durably (tmp + fsync + rename + directory fsync). */
export async function writeStoreHistory(storeDir: string, history: StoreHistory, fl: FileLayer): Promise<void> {
  await fl.writeFileDurable(path.join(storeDir, historyFileName), encodeHistory(history));
}

/**
 * The history of a store restored from a backup ending at `forkOffset`, whose store had history
 * `parent` (undefined: a backup from before history ids, whose ancestry is unknown).
 */
export function forkedHistory(parent: Pick<StoreHistory, 'id' | 'ancestors'> | undefined, forkOffset: number, nowMs: number): StoreHistory {
  const ancestors: HistoryAncestor[] = parent
    ? [{ id: parent.id, forkOffset }, ...parent.ancestors.map((a) => ({ id: a.id, forkOffset: Math.min(a.forkOffset, forkOffset) }))]
    : [];
  return { id: newHistoryId(), origin: 'restored', createdAtMs: nowMs, startOffset: forkOffset + 1, ancestors: ancestors.slice(0, historyAncestorsMax) };
}

/**
 * Whether a consumer that applied every transaction up to `after` in history `consumerId` holds
 * exactly this store's transactions up to `after`: same history, or an ancestor this one left
 * after `after`. An unknown id is not (a fresh result is always safe).
 */
export function sharesOffsets(history: Pick<StoreHistory, 'id' | 'ancestors'>, consumerId: string, after: number): boolean {
  if (consumerId === history.id) return true;
  const ancestor = history.ancestors.find((a) => a.id === consumerId);
  return ancestor !== undefined && after <= ancestor.forkOffset;
}
