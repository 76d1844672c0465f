/**
 * Server-level denials (refusals before a tenant store is involved: their only record) wait in
 * memory while the control plane is away. A shutdown in that state writes them to a spool file
 * under `${dataDir}/audit-spool/`, one file per shutdown, written atomically; the next start
 * loads every spool and stages it once Postgres answers, then removes the file.
 *
 * Exactly once: a spool's events are staged under a source of their own, numbered by their place
 * in the file (serverAuditSpoolSource), so staging a spool again after a crash between its
 * staging and its removal adds nothing.
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import { auditTenantPattern } from '../../storage/control/control-plane.js';
import type { ServerAuditEvent } from '../../storage/control/audit-staging.js';
import { mkdirDurable } from '../../storage/io/durable-dir.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { readBoundedFile } from '../../storage/io/read-whole.js';

export const denialSpoolDirName = 'audit-spool';
export const denialSpoolFormat = 'ioboxx-denial-spool';
export const denialSpoolVersion = 1;
/**
 * Spools loaded at one start (oldest first), and at most denialSpoolDenialsMax denials in all
 * (the first spool always): the rest wait for the next start, so a start holds no more in memory
 * than one spool's worth.
 */
export const denialSpoolFilesMax = 1_000;
/** Denials one spool holds: the in-memory queue's own bound (dirtyTenantsMax). */
export const denialSpoolDenialsMax = 100_000;
/** Bytes of one spooled denial at most (its text fields are clipped to 1024 characters, JSON-escaped). */
export const denialSpoolEntryBytesMax = 32 * 1024;
/** A spool file larger than this is damage, not data: set aside before reading it. */
export const denialSpoolBytesMax = denialSpoolDenialsMax * denialSpoolEntryBytesMax;
/** Suffix of a spool that could not be read (renamed, never loaded again). */
export const denialSpoolSetAsideSuffix = '.damaged';

/** `<ms since epoch>-<uuid>`: names sort oldest first. */
const spoolIdPattern = /^\d{13}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const spoolFileSuffix = '.json';

export interface DenialSpool {
  readonly id: string;
  readonly file: string;
  readonly denials: readonly ServerAuditEvent[];
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
  /** Spools past denialSpoolFilesMax, left for the next start. */
  readonly deferred: number;
}

export function denialSpoolDir(dataDir: string): string {
  return path.join(dataDir, denialSpoolDirName);
}

/** Writes `denials` durably as a new spool; returns its file. */
export async function writeDenialSpool(dataDir: string, denials: readonly ServerAuditEvent[]): Promise<string> {
  if (denials.length === 0 || denials.length > denialSpoolDenialsMax) {
    throw new Error(`a spool holds 1..${denialSpoolDenialsMax} denials (got ${denials.length})`);
  }
  const dir = denialSpoolDir(dataDir);
  await mkdirDurable(nodeFileLayer, dir, dataDir);
  const file = path.join(dir, `${Date.now()}-${randomUUID()}${spoolFileSuffix}`);
  const body = JSON.stringify({ format: denialSpoolFormat, version: denialSpoolVersion, denials });
  await nodeFileLayer.writeFileDurable(file, Buffer.from(body, 'utf8'));
  return file;
}

/**
 * The spools of the data dir, oldest first. One that cannot be read or does not parse is
 * renamed aside (`.damaged`) and reported, never thrown: it must not stop the server.
 */
export async function loadDenialSpools(dataDir: string): Promise<LoadedDenialSpools> {
  const dir = denialSpoolDir(dataDir);
  if (!(await nodeFileLayer.exists(dir))) return { spools: [], setAside: [], deferred: 0 };
  const ids = (await nodeFileLayer.readdir(dir))
    .filter((name) => name.endsWith(spoolFileSuffix) && spoolIdPattern.test(name.slice(0, -spoolFileSuffix.length)))
    .map((name) => name.slice(0, -spoolFileSuffix.length))
    .sort();
  const spools: DenialSpool[] = [];
  const setAside: SetAsideSpool[] = [];
  let denials = 0;
  let read = 0;
  for (const id of ids.slice(0, denialSpoolFilesMax)) {
    const file = path.join(dir, `${id}${spoolFileSuffix}`);
    let spool: DenialSpool;
    try {
      spool = { id, file, denials: await readSpoolFile(file) };
    } catch (error) {
      setAside.push(await setSpoolAside(file, (error as Error).message));
      read++;
      continue;
    }
    if (spools.length > 0 && denials + spool.denials.length > denialSpoolDenialsMax) break;
    spools.push(spool);
    denials += spool.denials.length;
    read++;
  }
  return { spools, setAside, deferred: ids.length - read };
}

/** Removes a staged spool durably. */
export async function removeDenialSpool(spool: DenialSpool): Promise<void> {
  await nodeFileLayer.unlink(spool.file);
  await nodeFileLayer.fsyncDir(path.dirname(spool.file));
}

async function readSpoolFile(file: string): Promise<ServerAuditEvent[]> {
  const parsed: unknown = JSON.parse((await readBoundedFile(nodeFileLayer, file, denialSpoolBytesMax, 'denialSpoolBytesMax')).toString('utf8'));
  const spool = parsed as { format?: unknown; version?: unknown; denials?: unknown };
  if (typeof parsed !== 'object' || parsed === null || spool.format !== denialSpoolFormat || spool.version !== denialSpoolVersion) {
    throw new Error(`not a ${denialSpoolFormat} version ${denialSpoolVersion} file`);
  }
  if (!Array.isArray(spool.denials) || spool.denials.length === 0 || spool.denials.length > denialSpoolDenialsMax) {
    throw new Error(`denials must be a list of 1..${denialSpoolDenialsMax}`);
  }
  return spool.denials.map((denial, index) => checkedDenial(denial, index));
}

function checkedDenial(value: unknown, index: number): ServerAuditEvent {
  const d = value as Record<string, unknown>;
  const ok = typeof value === 'object' && value !== null
    && (d.tenant === null || (typeof d.tenant === 'string' && auditTenantPattern.test(d.tenant)))
    && Number.isSafeInteger(d.atMs)
    && (d.subject === null || typeof d.subject === 'string')
    && typeof d.action === 'string' && typeof d.target === 'string' && typeof d.outcome === 'string'
    && (d.reason === undefined || typeof d.reason === 'string');
  if (!ok) throw new Error(`denial ${index} is not a server audit event`);
  return {
    tenant: d.tenant as string | null, atMs: d.atMs as number, subject: d.subject as string | null,
    action: d.action as string, target: d.target as string, outcome: d.outcome as string,
    ...(d.reason === undefined ? {} : { reason: d.reason as string }),
  };
}

async function setSpoolAside(file: string, reason: string): Promise<SetAsideSpool> {
  const movedTo = `${file}${denialSpoolSetAsideSuffix}`;
  try {
    await nodeFileLayer.rename(file, movedTo);
    await nodeFileLayer.fsyncDir(path.dirname(file));
    return { file, movedTo, reason };
  } catch {
    return { file, movedTo: undefined, reason };
  }
}
