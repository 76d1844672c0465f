/**
 * Online backup of one store: a verified snapshot plus the log after it, cut at a whole,
 * durable frame, copied while the store keeps committing.
 *
 * Two ways to read the sources, one copy path:
 *  - `backupStore(store)`: in the process that has the store open. Takes a snapshot now and
 *    copies each segment up to the durable size the commitlog reports (`store.logSources()`).
 *  - `backupStoreDirectory(dir)`: from the files alone (the store may be open in another
 *    process, e.g. the server). Newest snapshot whose files verify; each sealed segment whole
 *    (any damage there is fatal, as in recovery); the active segment up to its last whole
 *    frame, which the backup then fdatasyncs at the source so nothing it copies is volatile.
 *    (One corner it cannot see: a batch whose write fails with ENOSPC at that very moment is
 *    rolled back by the server after the copy read it.)
 *
 * Every source file is opened before anything is copied: the engine may retire old snapshots
 * and segments at any time, and an open descriptor keeps reading what it opened. If a file
 * vanished between listing and opening, the attempt starts over (bounded).
 *
 * The state hash at the backup's end offset is learnt the only way that is certainly right:
 * by opening a copy of the backup with the engine. The manifest is written last, and the backup
 * is put in place after it (backup-destination.ts): an interrupted backup leaves at most its
 * partial copy, named `.partial-<pid>`, never a DIR to mistake for a backup.
 */
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { DamagedStore, MemoryError, namingStoreDir } from '../errors.js';
import type { FileHandleLike, FileLayer } from '../io/file-layer.js';
import { statfsFreeBytes, type FreeBytesOf } from '../io/free-bytes.js';
import { nodeFileLayer } from '../io/node-file-layer.js';
import { listSegments, scanSegmentBytes } from '../log/recovery.js';
import type { StoreModule } from '../reducer.js';
import { binaryFileName, jsonFileName, manifestFileName, snapshotDirName, type SnapshotManifest } from '../snapshot/manifest.js';
import { listSnapshots, loadSnapshot, SnapshotInvalid, type SnapshotRef } from '../snapshot/reader.js';
import { lostAcknowledged, storeSchemas, type LogEnd, type Store } from '../store.js';
import { readCheckpoint } from '../log/checkpoint.js';
import { lockHolder } from '../store-lock.js';
import type { TableSchema } from '../schema.js';
import type { StoreHistory } from '../history.js';
import { historyOfFiles } from '../history-evidence.js';
import {
  backupFormatVersion,
  backupManifestFileName,
  backupStoreDirName,
  encodeBackupManifest,
  type BackupFile,
  type BackupManifest,
} from './backup-manifest.js';
import { FileRefused } from '../io/file-refused.js';
import { readExactly, readUpTo } from '../io/read-whole.js';
import { copyOpenFile, writeNewFile } from './file-copy.js';
import { backupSpaceExhausted, ensureBackupSpace } from './backup-space.js';
import { writeBackupDir } from './backup-destination.js';
import { copyBackupFiles, proveStore } from './prove-copy.js';

/** Attempts when a source file is retired between listing and opening it. */
export const backupAttemptsMax = 3;

export interface BackupOptions {
  /** Must not exist, or be an empty directory; it appears only once the backup is whole (backup-destination.ts). */
  readonly backupDir: string;
  /** The store's module: the copy is opened with it to prove its state hash. */
  readonly module: StoreModule;
  readonly tenant?: string | null;
  readonly fileLayer?: FileLayer;
  readonly nowMs?: number;
  readonly onProgress?: (phase: string, done: number, total: number) => void;
  /** Free space at the destination, checked before copying (backup-space.ts; tests play a full disk). */
  readonly freeBytesOf?: FreeBytesOf;
}

export interface BackupReport {
  readonly backupDir: string;
  readonly manifest: BackupManifest;
  readonly bytes: number;
  /** Snapshots passed over (damaged, or not reachable from the log), with why. */
  readonly snapshotsSkipped: readonly string[];
  /** Partial copies that killed backups into the same directory left: removed (backup-destination.ts). */
  readonly partialsRemoved: readonly string[];
  /** Partial copies of killed backups into other directories beside it: left, for the operator. */
  readonly partialsElsewhere: readonly string[];
}

interface OpenedSnapshot {
  readonly ref: SnapshotRef & { manifest: SnapshotManifest };
  readonly handles: ReadonlyMap<string, FileHandleLike>;
}

interface OpenedSegment {
  readonly file: string;
  readonly firstOffset: number;
  readonly handle: FileHandleLike;
  /** Store mode: the durable size and frame count the commitlog reported. */
  readonly durable?: { readonly bytes: number; readonly frames: number };
}

interface Sources {
  readonly mode: 'store' | 'directory';
  /** The store read from. */
  readonly dir: string;
  /**
   * Directory mode, when no process holds the store: what its files say was acknowledged (the
   * clean close's checkpoint, the snapshots). The log must reach it, as the open requires: a bad
   * frame in the last segment is then damage, not a write in progress.
   */
  readonly acknowledged?: { readonly checkpointOffset?: number; readonly snapshots: readonly SnapshotRef[] };
  /** Newest first; store mode has at most one (the snapshot it just took). */
  readonly snapshots: readonly OpenedSnapshot[];
  /** Directory mode: snapshots passed over before copying (a manifest that does not parse, a file that cannot be opened), with why. */
  readonly skipped?: readonly string[];
  readonly segments: readonly OpenedSegment[];
  /** The store's history (undefined: a store no version with history ids has opened yet). */
  readonly history?: StoreHistory;
}

export function backupStore(store: Store, options: BackupOptions): Promise<BackupReport> {
  return takeBackup(store.dir, options, (fl) => openStoreSources(store, fl));
}

export function backupStoreDirectory(storeDir: string, options: BackupOptions): Promise<BackupReport> {
  return takeBackup(storeDir, options, (fl) => openDirectorySources(storeDir, fl));
}

async function takeBackup(storeDir: string, options: BackupOptions, openSources: (fl: FileLayer) => Promise<Sources>): Promise<BackupReport> {
  const fl = options.fileLayer ?? nodeFileLayer;
  const backupDir = path.resolve(options.backupDir);
  await refuseInsideStore(storeDir, backupDir);
  try {
    const written = await writeBackupDir(fl, backupDir, (scratch) => takeBackupInto(options, openSources, fl, scratch));
    return { ...written.result, backupDir, partialsRemoved: written.partialsRemoved, partialsElsewhere: written.partialsElsewhere };
  } catch (error) {
    // Damage is of the store backed up: its repair hint names it, as the store's own open does.
    throw backupSpaceExhausted(backupDir, error) ?? namingStoreDir(error, storeDir);
  }
}

/** Copy, prove and describe the backup in `backupDir` (the scratch it is written in); its manifest last. */
async function takeBackupInto(options: BackupOptions, openSources: (fl: FileLayer) => Promise<Sources>, fl: FileLayer, backupDir: string): Promise<Omit<BackupReport, 'backupDir' | 'partialsRemoved' | 'partialsElsewhere'>> {
  const storeCopy = path.join(backupDir, backupStoreDirName);
  let copied: CopiedSources | undefined;
  let history: StoreHistory | undefined;
  for (let attempt = 1; copied === undefined; attempt++) {
    await rm(storeCopy, { recursive: true, force: true });
    await fl.mkdirp(storeCopy);
    let sources: Sources | undefined;
    try {
      sources = await openSources(fl);
      history = sources.history;
      await ensureBackupSpace(backupDir, await sourcesBytes(sources), options.freeBytesOf ?? statfsFreeBytes);
      copied = await copySources(fl, sources, storeCopy, storeSchemas(options.module), options.onProgress);
    } catch (error) {
      const retired = (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (!retired || attempt >= backupAttemptsMax) throw error;
    } finally {
      if (sources) await closeSources(sources);
    }
  }
  await fl.fsyncDir(backupDir);

  // Prove the copy: open it with the engine in a scratch directory and read its state hash.
  const scratch = await mkdtemp(path.join(backupDir, '.prove-'));
  let proven;
  try {
    const total = copied.files.reduce((n, f) => n + f.bytes, 0);
    let done = 0;
    await copyBackupFiles(fl, backupDir, copied.files, scratch, (n) => options.onProgress?.('prove', (done += n), total));
    proven = await proveStore(scratch, options.module, copied.endOffset, fl, options.onProgress).catch((error: unknown) => {
      throw inSourceStore(error, scratch, copied!.sourceDir);
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  if (copied.snapshot && copied.snapshot.offset === copied.endOffset && copied.snapshot.stateHash !== proven.stateHash) {
    throw new MemoryError('internal', `backup copy hashes to ${proven.stateHash} but its snapshot at the same offset says ${copied.snapshot.stateHash}`);
  }

  const manifest: BackupManifest = {
    format: backupFormatVersion,
    kind: 'ioboxx-memory-backup',
    tenant: options.tenant ?? null,
    createdAtMs: options.nowMs ?? Date.now(),
    source: copied.mode,
    snapshot: copied.snapshot ?? null,
    logFirstOffset: copied.logFirstOffset,
    endOffset: copied.endOffset,
    stateHash: proven.stateHash,
    tables: proven.tables,
    files: copied.files,
    ...(history ? { history } : {}),
  };
  // The commit point: a backup directory without this file is unfinished (and is put in place only after it).
  await fl.writeFileDurable(path.join(backupDir, backupManifestFileName), encodeBackupManifest(manifest));
  return { manifest, bytes: copied.files.reduce((n, f) => n + f.bytes, 0), snapshotsSkipped: copied.skipped };
}

/**
 * Damage the proof's open found in the copy is damage of the store it was copied from (the copy
 * holds the same files, cut at the same bytes): name the store's file and directory, never the scratch copy.
 */
function inSourceStore(error: unknown, scratch: string, sourceDir: string): unknown {
  if (!(error instanceof DamagedStore) || path.relative(scratch, error.file).startsWith('..')) return error;
  return new DamagedStore(path.join(sourceDir, path.relative(scratch, error.file)), error.position, `${error.reason} (found by opening the backup's copy)`, error.remedy, sourceDir);
}

/** `p` with symbolic links resolved as far as it exists (the rest appended): where it really is. */
export async function realPathSoFar(p: string): Promise<string> {
  const rest: string[] = [];
  for (let at = path.resolve(p); ; at = path.dirname(at)) {
    const real = await realpath(at).catch(() => undefined);
    if (real !== undefined) return path.join(real, ...rest.reverse());
    if (path.dirname(at) === at) return path.resolve(p);
    rest.push(path.basename(at));
  }
}

/** A backup inside the store it copies would be lost with the store (and copied into the next backup): refused before anything is written. */
async function refuseInsideStore(storeDir: string, backupDir: string): Promise<void> {
  const store = await realPathSoFar(storeDir);
  const relative = path.relative(store, await realPathSoFar(backupDir));
  if (relative === '' || !(relative.startsWith('..') || path.isAbsolute(relative))) {
    throw new MemoryError('invalid_argument', `backup directory ${backupDir} is inside the store it backs up (${store})`,
      'choose a directory outside the store: a backup must outlive the store it copies');
  }
}

// ------------------------------------------------------------------ sources

async function openStoreSources(store: Store, fl: FileLayer): Promise<Sources> {
  const taken = await store.snapshot();
  // Read in one tick after the snapshot: every byte up to each `bytes` is fdatasync'ed.
  const log = store.logSources();
  const snapshots: OpenedSnapshot[] = [];
  if (taken.offset >= 0) {
    const ref = (await listSnapshots(store.dir, fl)).find((r) => r.offset === taken.offset);
    if (!ref?.manifest) throw Object.assign(new Error(`snapshot ${snapshotDirName(taken.offset)} was retired before it could be opened`), { code: 'ENOENT' });
    snapshots.push(await openSnapshot({ ...ref, manifest: ref.manifest }, fl));
  }
  const segments: OpenedSegment[] = [];
  try {
    for (const s of log) {
      segments.push({ file: s.file, firstOffset: s.firstOffset, handle: await fl.open(s.file, 'r'), durable: { bytes: s.bytes, frames: s.frames } });
    }
  } catch (error) {
    await closeSources({ mode: 'store', dir: store.dir, snapshots, segments });
    throw error;
  }
  return { mode: 'store', dir: store.dir, snapshots, segments, history: store.history };
}

async function openDirectorySources(storeDir: string, fl: FileLayer): Promise<Sources> {
  // Snapshots first, then segments: the engine deletes only segments older than a kept
  // snapshot, so every segment after the newest snapshot listed here is still listed below.
  const snapshots: OpenedSnapshot[] = [];
  const segments: OpenedSegment[] = [];
  // Read before the files: a process that opens the store meanwhile cuts only a torn tail, and refuses what this would refuse.
  const acknowledged = lockHolder(storeDir) === null ? await acknowledgedIn(storeDir, fl) : undefined;
  // A damaged history file is refused here as the open refuses it; a missing one is the history
  // the checkpoint or a snapshot records, which the store's next open puts back.
  const history = (await historyOfFiles(storeDir, fl))?.history;
  const skipped: string[] = [];
  try {
    for (const ref of await listSnapshots(storeDir, fl)) {
      if (!ref.manifest) {
        // A manifest is renamed into place whole: one there that does not parse is damage, the open
        // skips it too (so is a file in the directory's place: exists() fails). None at all is a write in progress.
        if (await fl.exists(path.join(ref.dir, manifestFileName)).catch(() => true)) skipped.push(`${ref.dir}: ${ref.problem}`);
        continue;
      }
      try {
        snapshots.push(await openSnapshot({ ...ref, manifest: ref.manifest }, fl));
      } catch (error) {
        // As the open, which skips a snapshot whose file it cannot read and loads an older one.
        const retired = (error as NodeJS.ErrnoException).code === 'ENOENT';
        if (!retired && !(error instanceof FileRefused)) throw error;
        // A file gone from a store no process holds is damage; beside a live writer, its retention just removed the snapshot.
        if (!retired || acknowledged) skipped.push(`${ref.dir}: ${(error as Error).message}`);
      }
    }
    for (const s of await listSegments(path.join(storeDir, 'log'), fl)) {
      segments.push({ file: s.file, firstOffset: s.firstOffset, handle: await fl.open(s.file, 'r') });
    }
  } catch (error) {
    await closeSources({ mode: 'directory', dir: storeDir, snapshots, segments });
    throw error;
  }
  if (snapshots.length === 0 && segments.length === 0) {
    throw new MemoryError('not_found', `${storeDir} holds no store (no snapshots, no log)`);
  }
  return { mode: 'directory', dir: storeDir, snapshots, skipped, segments, ...(acknowledged ? { acknowledged } : {}), ...(history ? { history } : {}) };
}

/** What a closed store's files say was acknowledged: the checkpoint of its clean close (one that does not parse counts as none, as in the open) and its snapshots. */
async function acknowledgedIn(storeDir: string, fl: FileLayer): Promise<NonNullable<Sources['acknowledged']>> {
  const checkpoint = await readCheckpoint(path.join(storeDir, 'log'), fl);
  const snapshots = await listSnapshots(storeDir, fl);
  return typeof checkpoint === 'object' ? { checkpointOffset: checkpoint.offset, snapshots } : { snapshots };
}

async function openSnapshot(ref: SnapshotRef & { manifest: SnapshotManifest }, fl: FileLayer): Promise<OpenedSnapshot> {
  const handles = new Map<string, FileHandleLike>();
  try {
    for (const name of [manifestFileName, binaryFileName, jsonFileName]) handles.set(name, await fl.open(path.join(ref.dir, name), 'r'));
  } catch (error) {
    for (const h of handles.values()) await h.close().catch(() => undefined);
    throw error;
  }
  return { ref, handles };
}

/** About what copying `sources` writes (at most): the newest snapshot's data files and every segment. */
async function sourcesBytes(sources: Sources): Promise<number> {
  const files = sources.snapshots[0]?.ref.manifest.files;
  let bytes = files ? files.binary.bytes + files.json.bytes : 0;
  for (const s of sources.segments) bytes += s.durable?.bytes ?? (await s.handle.size());
  return bytes;
}

async function closeSources(sources: Sources): Promise<void> {
  for (const s of sources.snapshots) for (const h of s.handles.values()) await h.close().catch(() => undefined);
  for (const s of sources.segments) await s.handle.close().catch(() => undefined);
}

// ------------------------------------------------------------------ copy

interface CopiedSources {
  readonly mode: 'store' | 'directory';
  readonly sourceDir: string;
  readonly snapshot?: { offset: number; stateHash: string };
  readonly logFirstOffset: number;
  readonly endOffset: number;
  readonly files: BackupFile[];
  readonly skipped: string[];
}

/** Try the snapshots newest first; the first that verifies and that the log continues from wins. */
async function copySources(
  fl: FileLayer,
  sources: Sources,
  storeCopy: string,
  schemas: ReadonlyMap<string, TableSchema>,
  onProgress: BackupOptions['onProgress'],
): Promise<CopiedSources> {
  const skipped: string[] = [...(sources.skipped ?? [])];
  const candidates: (OpenedSnapshot | undefined)[] = [...sources.snapshots];
  // Without any usable snapshot the log itself must start at offset 0.
  if (sources.mode === 'directory' || sources.snapshots.length === 0) candidates.push(undefined);
  for (const candidate of candidates) {
    await rm(path.join(storeCopy, 'snapshots'), { recursive: true, force: true });
    await rm(path.join(storeCopy, 'log'), { recursive: true, force: true });
    const files: BackupFile[] = [];
    const snapshotOffset = candidate?.ref.offset ?? -1;
    if (candidate) {
      const problem = await copySnapshot(fl, candidate, storeCopy, files, schemas);
      if (problem) {
        if (sources.mode === 'store') throw new DamagedStore(candidate.ref.dir, 0, `the snapshot just taken does not verify: ${problem}`);
        skipped.push(`${candidate.ref.dir}: ${problem}`);
        continue;
      }
    }
    const copiedLog = await copyLog(fl, sources, snapshotOffset, storeCopy, files, onProgress);
    const lost = typeof copiedLog === 'object' && sources.acknowledged
      ? lostAcknowledged(copiedLog, sources.acknowledged.checkpointOffset, sources.acknowledged.snapshots)
      : undefined;
    if (lost) throw lost;
    const log = typeof copiedLog === 'object' && snapshotOffset > copiedLog.lastOffset
      ? `offset ${snapshotOffset} is past the durable log end ${copiedLog.lastOffset}`
      : copiedLog;
    if (typeof log === 'string') {
      if (candidate) {
        skipped.push(`${candidate.ref.dir}: ${log}`);
        continue;
      }
      throw new DamagedStore(path.join(sources.dir, 'log'), 0, `no usable snapshot and ${log}: ${skipped.join('; ') || 'no snapshots'}`);
    }
    return {
      mode: sources.mode,
      sourceDir: sources.dir,
      ...(candidate ? { snapshot: { offset: candidate.ref.offset, stateHash: candidate.ref.manifest.stateHash } } : {}),
      logFirstOffset: log.logFirstOffset,
      endOffset: log.lastOffset,
      files,
      skipped,
    };
  }
  throw new MemoryError('internal', 'no backup candidate'); // unreachable: the last candidate throws or returns
}

/**
 * Copy a snapshot's three files; returns a problem when the data files do not match its manifest,
 * or when the copy does not load the way the open loads a snapshot (its manifest's table counts
 * and state hash, the rows' order): the open would skip it, so the backup passes over it too.
 */
async function copySnapshot(fl: FileLayer, snapshot: OpenedSnapshot, storeCopy: string, files: BackupFile[], schemas: ReadonlyMap<string, TableSchema>): Promise<string | undefined> {
  const name = snapshotDirName(snapshot.ref.offset);
  const dir = path.join(storeCopy, 'snapshots', name);
  await fl.mkdirp(dir);
  const expected = snapshot.ref.manifest.files;
  for (const [file, entry] of [[binaryFileName, expected.binary], [jsonFileName, expected.json]] as const) {
    const handle = snapshot.handles.get(file)!;
    if ((await handle.size()) !== entry.bytes) return `${file} has ${await handle.size()} bytes, its manifest says ${entry.bytes}`;
    const copied = await copyOpenFile(fl, handle, entry.bytes, path.join(dir, file));
    if (copied.sha256 !== entry.sha256) return `${file} does not match its manifest's SHA-256`;
    files.push({ path: `snapshots/${name}/${file}`, ...copied });
  }
  // The manifest last, from the open handle: the copy is of the snapshot that was verified.
  const manifestHandle = snapshot.handles.get(manifestFileName)!;
  const manifestBytes = await readExactly(manifestHandle, await manifestHandle.size(), manifestFileName);
  files.push({ path: `snapshots/${name}/${manifestFileName}`, ...(await writeNewFile(fl, path.join(dir, manifestFileName), manifestBytes)) });
  await fl.fsyncDir(dir);
  await fl.fsyncDir(path.dirname(dir));
  const [copy] = await listSnapshots(storeCopy, fl);
  return loadSnapshot(copy!, fl, schemas).then(() => undefined, (error: unknown) => {
    if (error instanceof SnapshotInvalid) return error.message.slice(`snapshot ${copy!.dir}: `.length);
    throw error;
  });
}

/**
 * Copy the segments holding offsets after `snapshotOffset`. Returns the copied range, or why
 * this snapshot cannot start the backup (the log does not continue from it).
 */
async function copyLog(
  fl: FileLayer,
  sources: Sources,
  snapshotOffset: number,
  storeCopy: string,
  files: BackupFile[],
  onProgress: BackupOptions['onProgress'],
): Promise<{ logFirstOffset: number } & LogEnd | string> {
  const all = sources.segments;
  // A segment whose every frame is at or below the snapshot is not needed (the engine's own retention rule).
  const needed = all.filter((s, i) => i === all.length - 1 || all[i + 1]!.firstOffset - 1 > snapshotOffset);
  if (needed.length === 0) return { logFirstOffset: snapshotOffset + 1, lastOffset: snapshotOffset, end: { file: path.join(sources.dir, 'log'), position: 0 } };
  if (needed[0]!.firstOffset > snapshotOffset + 1) {
    return `the log starts at offset ${needed[0]!.firstOffset}, after offset ${snapshotOffset + 1}`;
  }
  const logCopy = path.join(storeCopy, 'log');
  await fl.mkdirp(logCopy);
  const sizes = await Promise.all(needed.map(async (s) => s.durable?.bytes ?? (await s.handle.size())));
  const total = sizes.reduce((a, b) => a + b, 0);
  let done = 0;
  let expectedFirst = needed[0]!.firstOffset;
  let endOffset = expectedFirst - 1;
  let end: LogEnd['end'] = { file: needed[0]!.file, position: 0 };
  for (let i = 0; i < needed.length; i++) {
    const segment = needed[i]!;
    const isLast = i === needed.length - 1;
    if (segment.firstOffset !== expectedFirst) {
      throw new DamagedStore(segment.file, 0, `segment starts at offset ${segment.firstOffset} but the previous one ends before ${expectedFirst}`);
    }
    // The active segment of a store open elsewhere may shrink meanwhile: closing the store (idle,
    // evicted, shut down) cuts the zeros ahead of its frames. Read what is there.
    const buf = isLast && sources.mode === 'directory'
      ? await readUpTo(segment.handle, sizes[i]!)
      : await readExactly(segment.handle, sizes[i]!, segment.file);
    const scanned = scanSegmentBytes(buf, segment.file, segment.firstOffset);
    if (scanned.problem) {
      // The active segment of a store open elsewhere may end in a frame being written: cut before it.
      const tolerated = isLast && sources.mode === 'directory';
      if (!tolerated) throw new DamagedStore(segment.file, scanned.problem.position, `${scanned.problem.reason} (offset ${scanned.problem.offset})`);
      end = { file: segment.file, position: scanned.problem.position, torn: scanned.problem.reason };
      if (scanned.headerBad) break; // a segment still being created: nothing in it yet
    } else {
      end = { file: segment.file, position: scanned.info.end };
    }
    const frames = scanned.info.positions.length;
    if (segment.durable && (frames !== segment.durable.frames || scanned.info.end !== segment.durable.bytes)) {
      throw new MemoryError('internal', `${segment.file}: ${frames} frames in ${scanned.info.end} bytes, the commitlog reported ${segment.durable.frames} in ${segment.durable.bytes}`);
    }
    // Make what is copied durable at the source too: a frame read from another process's page
    // cache is not yet on disk until its fdatasync (ours or the writer's) returns.
    if (isLast && sources.mode === 'directory') await segment.handle.datasync();
    const name = path.basename(segment.file);
    files.push({ path: `log/${name}`, ...(await writeNewFile(fl, path.join(logCopy, name), buf.subarray(0, scanned.info.end))) });
    onProgress?.('backup', (done += sizes[i]!), total);
    expectedFirst = segment.firstOffset + frames;
    endOffset = expectedFirst - 1;
  }
  await fl.fsyncDir(logCopy);
  await fl.fsyncDir(storeCopy);
  return { logFirstOffset: needed[0]!.firstOffset, lastOffset: endOffset, end };
}
