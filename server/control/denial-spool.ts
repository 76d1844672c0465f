/**
 * The denial spool directory, `${dataDir}/audit-spool/`: server-level denials (refusals before a
 * tenant store is involved: their only record) that could not be staged in Postgres promptly
 * wait here, on disk, across a crash or a restart. The running server appends them to its live
 * spool (live-denial-spool.ts); earlier versions wrote one whole spool at a clean shutdown
 * (denial-spool-format.ts has both formats). A start loads every spool left by an earlier process
 * and stages it once Postgres answers, then removes the file.
 *
 * Exactly once: a spool's events are staged under a source of their own, numbered by their place
 * in the file (serverAuditSpoolSource), so staging a spool again after a crash between its
 * staging and its removal adds nothing.
 */
import * as path from 'node:path';
import type { ServerAuditEvent } from '../../storage/control/audit-staging.js';
import type { FileLayer } from '../../storage/io/file-layer.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { readBoundedFile } from '../../storage/io/read-whole.js';
import { decodeDenialSpoolLines, decodeDenialSpoolWhole, denialSpoolBytesMax, denialSpoolDenialsMax } from './denial-spool-format.js';

export const denialSpoolDirName = 'audit-spool';
/**
 * Spool files at most: a start loads this many (oldest first, and at most denialSpoolDenialsMax
 * denials in all, the first spool always; the rest wait for the next start, so a start holds no
 * more in memory than one spool's worth), and no live spool is created while the directory holds
 * this many.
 */
export const denialSpoolFilesMax = 1_000;
/**
 * Bytes of all spools of the directory at most: past it, denials stay in memory (bounded by
 * pendingDenialsMax) instead of going to disk, so a flood of bad tokens during an outage (or a
 * crash loop through one) cannot fill the data directory's disk. At most denialSpoolBytesMax,
 * so no spool file can grow over the size its reader refuses.
 */
export const denialSpoolDirBytesMax = 256 * 1024 * 1024;
/** Suffix of a spool that could not be read (renamed, never loaded again). */
export const denialSpoolSetAsideSuffix = '.damaged';
/** The live spool's file name suffix (version 2, lines). */
export const denialSpoolLinesSuffix = '.jsonl';
/** The whole-file spool's suffix (version 1, earlier versions' clean shutdown). */
const denialSpoolWholeSuffix = '.json';

if (denialSpoolDirBytesMax > denialSpoolBytesMax) throw new Error('denialSpoolDirBytesMax must not exceed denialSpoolBytesMax');

/** `<ms since epoch>-<uuid>`: names sort oldest first. */
const spoolIdPattern = /^\d{13}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface DenialSpool {
  readonly id: string;
  readonly file: string;
  readonly denials: readonly ServerAuditEvent[];
  /** The file's size when it was read (or last written): what its removal frees. */
  readonly bytes: number;
}

export interface SetAsideSpool {
  readonly file: string;
  /** Where it was moved, or undefined when even the rename failed (it stays, and is not loaded). */
  readonly movedTo: string | undefined;
  readonly reason: string;
}

export interface LoadedDenialSpools {
  readonly spools: DenialSpool[];
  readonly setAside: SetAsideSpool[];
  /** Spools past denialSpoolFilesMax or denialSpoolDenialsMax, left for the next start. */
  readonly deferred: number;
  /** The spool files left in the directory (loaded and deferred) and their bytes: what denialSpoolFilesMax and denialSpoolDirBytesMax count. */
  readonly files: number;
  readonly bytes: number;
}

export function denialSpoolDir(dataDir: string): string {
  return path.join(dataDir, denialSpoolDirName);
}

/** The spool's id when `name` is a spool file's name (either format), else undefined. */
function denialSpoolIdOf(name: string): string | undefined {
  const suffix = [denialSpoolLinesSuffix, denialSpoolWholeSuffix].find((s) => name.endsWith(s));
  const id = suffix === undefined ? undefined : name.slice(0, -suffix.length);
  return id !== undefined && spoolIdPattern.test(id) ? id : undefined;
}

/**
 * The spools of the data dir, oldest first, in either format. One that cannot be read or does
 * not parse is renamed aside (`.damaged`) and reported, never thrown: it must not stop the server.
 */
export async function loadDenialSpools(dataDir: string, fl: FileLayer = nodeFileLayer): Promise<LoadedDenialSpools> {
  const dir = denialSpoolDir(dataDir);
  if (!(await fl.exists(dir))) return { spools: [], setAside: [], deferred: 0, files: 0, bytes: 0 };
  const names = (await fl.readdir(dir)).filter((name) => denialSpoolIdOf(name) !== undefined).sort();
  const spools: DenialSpool[] = [];
  const setAside: SetAsideSpool[] = [];
  let denials = 0;
  let read = 0;
  for (const name of names.slice(0, denialSpoolFilesMax)) {
    const file = path.join(dir, name);
    let spool: DenialSpool;
    try {
      const bytes = await readBoundedFile(fl, file, denialSpoolBytesMax, 'denialSpoolBytesMax');
      const decoded = name.endsWith(denialSpoolLinesSuffix) ? decodeDenialSpoolLines(bytes) : decodeDenialSpoolWhole(bytes);
      spool = { id: denialSpoolIdOf(name)!, file, denials: decoded, bytes: bytes.length };
    } catch (error) {
      setAside.push(await setSpoolAside(fl, file, (error as Error).message));
      read++;
      continue;
    }
    if (spools.length > 0 && denials + spool.denials.length > denialSpoolDenialsMax) break;
    spools.push(spool);
    denials += spool.denials.length;
    read++;
  }
  const deferredNames = names.slice(read);
  let bytes = spools.reduce((n, s) => n + s.bytes, 0);
  for (const name of deferredNames) bytes += await fileBytes(fl, path.join(dir, name));
  return { spools, setAside, deferred: deferredNames.length, files: spools.length + deferredNames.length, bytes };
}

/** Removes a staged spool durably. */
export async function removeDenialSpool(spool: Pick<DenialSpool, 'file'>, fl: FileLayer = nodeFileLayer): Promise<void> {
  await fl.unlink(spool.file);
  await fl.fsyncDir(path.dirname(spool.file));
}

/** A deferred spool's size, for the directory's byte count (0 when it cannot be opened: it is not loaded either). */
async function fileBytes(fl: FileLayer, file: string): Promise<number> {
  try {
    const handle = await fl.open(file, 'r');
    try {
      return await handle.size();
    } finally {
      await handle.close();
    }
  } catch {
    return 0;
  }
}

async function setSpoolAside(fl: FileLayer, file: string, reason: string): Promise<SetAsideSpool> {
  const movedTo = `${file}${denialSpoolSetAsideSuffix}`;
  try {
    await fl.rename(file, movedTo);
    await fl.fsyncDir(path.dirname(file));
    return { file, movedTo, reason };
  } catch {
    return { file, movedTo: undefined, reason };
  }
}
