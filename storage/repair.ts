/**
 * `store repair`: when the log is damaged the store refuses to open. Repair keeps every
 * acknowledged transaction it can and moves the rest aside (never deleted) into
 * `log/repair-<time>/`; the report says how many transactions were dropped and their offsets.
 *
 * Rules, in the order repair applies them (DESIGN §4, invariant 5):
 *  - A file whose name lies inside offsets an earlier segment of the chain already holds is not a
 *    segment of this log (rotation never overlaps segments): it goes aside whole, nothing lost.
 *  - Zeros after the last frame of a sealed segment are cut (kept aside): the frames stay, and the
 *    next segment must still chain on where they end.
 *  - Other damage cuts the log there: the damaged segment's rest and every later segment go aside.
 *    But when the damage lies wholly below a snapshot that verifies, and the log from that
 *    snapshot on is intact, the segments below it go aside instead (the chain must stay whole), and
 *    with them the older snapshots the log no longer reaches: nothing after the snapshot is lost.
 *    When that snapshot lies inside the damaged segment itself (a store whose log is one segment),
 *    and no whole later segment carries the log on from it, the intact frames past the damage are
 *    copied into a segment of their own (named by their first offset) and the damaged file goes aside whole.
 *    Of the two, repair keeps the one that ends later (the cut when they tie: it moves less).
 *  - Snapshots past the new log end, and a clean-close checkpoint past it or of a log that was
 *    cut, are moved aside too: both are evidence of acknowledged transactions the log lost, and
 *    the open refuses while they stay.
 *  - With no segment left, the store reopens from its newest verified snapshot: the checkpoint and
 *    every other snapshot go aside. With none that verifies, repair refuses and changes nothing.
 * Every plan is made from one listing and one read of the log, before any file moves. Repair holds the store's
 * LOCK: never beside a live writer.
 */
import * as path from 'node:path';
import { DamagedStore } from './errors.js';
import type { FileLayer } from './io/file-layer.js';
import { nodeFileLayer } from './io/node-file-layer.js';
import { checkpointFileName, readCheckpoint } from './log/checkpoint.js';
import { checkFrame, frameOffsetAt } from './log/frame.js';
import { keepAsideAndCut, listSegments, resync, scanSegmentBytes, SegmentReader, type Damage } from './log/recovery.js';
import { encodeSegmentHeader, segmentFileName, segmentHeaderBytes } from './log/segment.js';
import { listSnapshots, verifySnapshotFiles, type SnapshotRef } from './snapshot/reader.js';
import { takeStoreLock } from './store-lock.js';

export interface RepairReport {
  readonly damaged: boolean;
  readonly file?: string;
  readonly position?: number;
  readonly reason?: string;
  /** Offsets dropped: [first, last], and their count. */
  readonly droppedFrom?: number;
  readonly droppedThrough?: number;
  readonly droppedTransactions: number;
  readonly movedAside: string[];
  /** Where what moved aside is kept (`log/repair-<ms>/`; nothing is deleted), when anything moved. */
  readonly asideDir?: string;
}

export async function repairStore(dir: string, nowMs: number, fl: FileLayer = nodeFileLayer): Promise<RepairReport> {
  const release = await takeStoreLock(dir, fl);
  try {
    return await repairLocked(dir, nowMs, fl);
  } finally {
    await release();
  }
}

/** One segment file as repair read it: its good frames from the start, and the first problem in it. */
interface FileScan {
  readonly file: string;
  /** By its name. */
  readonly firstOffset: number;
  readonly frames: number;
  readonly problem?: Damage;
  /** The problem is a run of zeros to the end of the file. */
  readonly zeroRun?: true;
  /** The highest offset a valid frame in it carries, past its problem too (-1: none): what the report counts as dropped. */
  readonly lastOffsetSeen: number;
  /** Past a bad frame, the frames that chain on, intact, to the end of the file (or its zeros): bytes [position, end), offsets from firstOffset. */
  readonly rejoin?: Rejoin;
}

interface Rejoin {
  readonly position: number;
  readonly end: number;
  readonly firstOffset: number;
  readonly frames: number;
}

/** A damaged segment whose intact frames past the damage become a segment of their own (named by their first offset); the file goes aside whole. */
interface Split extends Rejoin {
  readonly file: string;
  readonly newFile: string;
}

/** The chain of segments from one file on, as the open would walk it. */
interface Chain {
  /** Files inside offsets an earlier file of the chain holds: not segments of this log. */
  readonly strays: readonly FileScan[];
  /** Zeros after the frames of sealed segments, where the chain goes on. */
  readonly zeroRuns: readonly Damage[];
  /** The first damage: the chain ends before it. */
  readonly damage?: { readonly at: number; readonly damage: Damage };
  /** The last offset the chain holds before its damage (first offset - 1 when it holds none). */
  readonly end: number;
}

/** What repair does to the log: one listing, every move decided before the first one. */
interface Plan {
  /** First offset of the log that stays. */
  readonly logFirst: number;
  /** Last offset of the log that stays. */
  readonly end: number;
  /** Files moved aside whole. */
  readonly whole: readonly string[];
  /** Files cut at a byte, the rest of them kept aside: zero runs, and the damaged file of a cut. */
  readonly cuts: readonly Damage[];
  /** The damage the log was cut at, when it was: acknowledged frames may be behind it. */
  readonly cut?: Damage;
  /** The snapshot the store reopens from, when the log below it went aside. */
  readonly from?: SnapshotRef;
  /** The damaged segment whose frames past the damage carry the log on from that snapshot. */
  readonly split?: Split;
  /** Where the report says the damage was, and what repair found and did. */
  readonly file: string;
  readonly position: number;
  readonly reason: string;
}

async function repairLocked(dir: string, nowMs: number, fl: FileLayer): Promise<RepairReport> {
  const logDir = path.join(dir, 'log');
  // The one read of the log: every plan below is made from it.
  const files = await scanFiles(logDir, fl);
  if (files.length === 0) return repairWithoutLog(dir, logDir, nowMs, fl);
  // Damage as the open sees it: a bad frame or broken chain, a stray file, zeros in a sealed segment.
  const whole = walkChain(files, 0);
  const damaged = whole.damage !== undefined || whole.strays.length > 0 || whole.zeroRuns.length > 0;
  const plan = damaged ? await planAroundDamage(dir, files, whole, fl) : undefined;
  const end = plan?.end ?? whole.end;
  const logFirst = plan?.logFirst ?? -1;
  if (!plan?.from) await refuseLogWithoutBase(dir, plan?.logFirst ?? files[0]!.firstOffset, end, fl);
  // Past the end: evidence of what the log lost. Below the log's start (only when the log below a snapshot went): no longer replayable.
  const snapshotsPast = (await listSnapshots(dir, fl)).filter((ref) => ref.offset > end);
  const snapshotsBelow = plan?.from ? (await listSnapshots(dir, fl)).filter((ref) => ref.offset + 1 < logFirst) : [];
  const checkpointRead = await checkpointOffset(logDir, fl);
  const checkpointNotAFile = checkpointRead === notAFile;
  const checkpoint = checkpointNotAFile ? undefined : checkpointRead;
  // A checkpoint past the end is lost work; after a cut it no longer describes the log either. Something that is no file is no checkpoint: it goes aside.
  const checkpointStale = checkpointNotAFile || (checkpoint !== undefined && (plan?.cut !== undefined || checkpoint > end));
  if (!plan && snapshotsPast.length === 0 && !checkpointStale) return { damaged: false, droppedTransactions: 0, movedAside: [] };

  const aside = await asideDirOf(logDir, nowMs, fl);
  const movedAside: string[] = [];
  const split = plan?.split;
  if (split) {
    // The intact frames first, as a segment of their own; then the damaged file goes aside whole (a crash between leaves the new one a stray inside it, which repair moves aside again).
    const buf = await fl.readFile(split.file);
    await fl.writeFileDurable(split.newFile, [encodeSegmentHeader(split.firstOffset), buf.subarray(split.position, split.end)]);
    await fl.rename(split.file, path.join(aside, path.basename(split.file)));
    movedAside.push(`${split.file} (its frames from offset ${split.firstOffset} on, past the damage, were copied into ${path.basename(split.newFile)})`);
  }
  for (const cut of plan?.cuts ?? []) {
    const keptAt = path.join(aside, `${path.basename(cut.file)}.from-${cut.position}`);
    // From byte 0 the whole entry goes aside: a rename, unread (it may not even be a file).
    if (cut.position === 0) await fl.rename(cut.file, keptAt);
    else await keepAsideAndCut(fl, cut.file, await fl.readFile(cut.file), cut.position, keptAt);
    movedAside.push(`${cut.file} from byte ${cut.position}`);
  }
  for (const file of plan?.whole ?? []) movedAside.push(await moveAside(fl, file, path.join(aside, path.basename(file))));
  for (const ref of [...snapshotsPast, ...snapshotsBelow]) movedAside.push(await moveAside(fl, ref.dir, path.join(aside, `snapshot-${path.basename(ref.dir)}`)));
  if (checkpointStale) movedAside.push(await moveAside(fl, path.join(logDir, checkpointFileName), path.join(aside, checkpointFileName)));
  await syncMoves(dir, logDir, aside, fl);

  // What the log, the snapshots and the checkpoint show was there: everything past the new end is gone.
  const lastOffsetSeen = files.reduce((max, f) => Math.max(max, f.lastOffsetSeen), -1);
  const droppedThrough = Math.max(lastOffsetSeen, checkpoint ?? -1, ...snapshotsPast.map((ref) => ref.offset));
  const droppedTransactions = Math.max(0, droppedThrough - end);
  const where = plan ?? (checkpointNotAFile && snapshotsPast.length === 0
    ? { file: path.join(logDir, checkpointFileName), position: 0, reason: `${checkpointFileName} is not a regular file, so no clean-close checkpoint: moved aside whole; nothing acknowledged was dropped` }
    : undefined) ?? { ...(await logEnd(logDir, fl)), reason: `the log ends at offset ${end}, but ${snapshotsPast.length > 0 ? `snapshot ${path.basename(snapshotsPast[0]!.dir)}` : 'the clean-close checkpoint'} shows offsets through ${droppedThrough} were acknowledged` };
  return {
    damaged: true, file: where.file, position: where.position, reason: where.reason,
    ...(droppedTransactions > 0 ? { droppedFrom: end + 1, droppedThrough } : {}),
    droppedTransactions, movedAside, asideDir: aside,
  };
}

/**
 * The log (`files`, whose chain from the first is `whole`) has damage somewhere: choose between
 * cutting the log at the first damage and reopening from a verified snapshot above it, whichever keeps more.
 */
async function planAroundDamage(dir: string, files: readonly FileScan[], whole: Chain, fl: FileLayer): Promise<Plan> {
  if (!whole.damage) {
    // Only strays and zeros: nothing acknowledged is behind them.
    const first = [...whole.strays.map((f) => ({ file: f.file, position: 0 })), ...whole.zeroRuns].sort((a, b) => files.findIndex((f) => f.file === a.file) - files.findIndex((f) => f.file === b.file))[0];
    if (!first) throw new Error('planAroundDamage: a chain without damage, strays or zero runs is not damaged'); // a programmer error
    return {
      logFirst: files[0]!.firstOffset, end: whole.end, whole: whole.strays.map((f) => f.file), cuts: whole.zeroRuns,
      file: first.file, position: first.position, reason: `${describeFixes(whole, files)}; nothing acknowledged was dropped`,
    };
  }
  const cutAt = whole.damage.at;
  const damage = whole.damage.damage;
  const best = await bestSnapshotTail(dir, files, cutAt, whole.end, fl);
  if (!best) {
    return {
      logFirst: files[0]!.firstOffset, end: whole.end, cut: damage, file: damage.file, position: damage.position, reason: damage.reason,
      whole: [...whole.strays.map((f) => f.file), ...files.slice(cutAt + 1).map((f) => f.file)], cuts: [...whole.zeroRuns, damage],
    };
  }
  const { from, below, tailFiles, split, tail } = best;
  const logFirst = tailFiles[0]!.firstOffset;
  const tailCut = tail.damage;
  const kept = `the damage lies below snapshot ${path.basename(from.dir)} (offset ${from.offset}), which verifies, and the log from offset ${logFirst} on${split ? ` (past the damage in ${path.basename(split.file)})` : ''} is intact through ${tail.end}`;
  const fixes = tail.strays.length + tail.zeroRuns.length > 0 ? `; ${describeFixes(tail, tailFiles)}` : '';
  const after = tailCut
    ? `; the log is cut again at ${tailCut.damage.file} byte ${tailCut.damage.position} (${tailCut.damage.reason})`
    : `: the log below offset ${logFirst} was moved aside (the log must chain on from the snapshot), and nothing acknowledged was dropped`;
  return {
    logFirst, end: tail.end, from, file: damage.file, position: damage.position,
    reason: `${damage.reason} (offset ${damage.offset}); ${kept}${fixes}${after}`,
    whole: [...below.map((f) => f.file), ...tail.strays.map((f) => f.file), ...(tailCut ? tailFiles.slice(tailCut.at + 1).map((f) => f.file) : [])],
    cuts: [...tail.zeroRuns, ...(tailCut ? [tailCut.damage] : [])],
    ...(tailCut ? { cut: tailCut.damage } : {}),
    ...(split ? { split } : {}),
  };
}

/**
 * The newest verified snapshot above `cutEnd` that an intact stretch of the log carries on from
 * (it starts at or below the offset after the snapshot and holds frames through it), with the
 * lowest file that stretch can start at: the one that ends latest, and of those keeps the most.
 */
async function bestSnapshotTail(dir: string, files: readonly FileScan[], damagedAt: number, cutEnd: number, fl: FileLayer): Promise<SnapshotTail | undefined> {
  let best: SnapshotTail | undefined;
  // Where the tail may start: a later file, or the intact frames past the damage inside the damaged file itself (a snapshot taken inside a segment).
  const starts: { below: readonly FileScan[]; tailFiles: readonly FileScan[]; split?: Split }[] = [];
  const damaged = files[damagedAt]!;
  const rejoin = damaged.rejoin;
  const newFile = rejoin ? path.join(path.dirname(damaged.file), segmentFileName(rejoin.firstOffset)) : undefined;
  if (rejoin && newFile && !files.some((f) => f.file === newFile)) {
    const rest: FileScan = { file: newFile, firstOffset: rejoin.firstOffset, frames: rejoin.frames, lastOffsetSeen: rejoin.firstOffset + rejoin.frames - 1 };
    starts.push({ below: files.slice(0, damagedAt), tailFiles: [rest, ...files.slice(damagedAt + 1)], split: { ...rejoin, file: damaged.file, newFile } });
  }
  // The file at 0 is where the cut would keep the log from: only a start above it moves the damage aside.
  // Whole files first, lowest first (the one that keeps the most); the split (a rewrite) only when no whole file does.
  const fileStarts: typeof starts = [];
  for (let start = 1; start < files.length; start++) fileStarts.push({ below: files.slice(0, start), tailFiles: files.slice(start) });
  starts.unshift(...fileStarts);
  for (const ref of await listSnapshots(dir, fl)) {
    if (ref.offset <= Math.max(cutEnd, best?.from.offset ?? -1)) break; // newest first: no later one ends later
    for (const start of starts) {
      if (start.tailFiles[0]!.firstOffset > ref.offset + 1) continue;
      const tail = walkChain(start.tailFiles, 0);
      if (tail.end < ref.offset || (best && tail.end <= best.tail.end)) continue;
      if ((await verifySnapshotFiles(ref, fl)) !== undefined) break; // an invalid snapshot: the open would skip it
      best = { from: ref, ...start, tail };
      break;
    }
  }
  return best;
}

interface SnapshotTail {
  readonly from: SnapshotRef;
  /** Files below the tail: moved aside whole. */
  readonly below: readonly FileScan[];
  /** The files the log keeps, from the snapshot on (the first may be the split's new segment). */
  readonly tailFiles: readonly FileScan[];
  readonly split?: Split;
  readonly tail: Chain;
}

/** Walk the chain from `files[from]` as the open would, noting strays and sealed zero runs on the way. */
function walkChain(files: readonly FileScan[], from: number): Chain {
  const strays: FileScan[] = [];
  const zeroRuns: Damage[] = [];
  let expected = files[from]?.firstOffset ?? 0;
  for (let i = from; i < files.length; i++) {
    const f = files[i]!;
    if (i > from && f.firstOffset < expected) {
      strays.push(f);
      continue;
    }
    if (f.firstOffset !== expected) {
      const reason = `segment chain broken: starts at ${f.firstOffset}, expected ${expected}`;
      return { strays, zeroRuns, damage: { at: i, damage: { file: f.file, position: 0, reason, offset: expected } }, end: expected - 1 };
    }
    // A zero run ends the last segment cleanly; in a sealed one it is cut, and the next must chain on.
    if (f.problem && f.zeroRun && i < files.length - 1) zeroRuns.push(f.problem);
    else if (f.problem && !f.zeroRun) return { strays, zeroRuns, damage: { at: i, damage: f.problem }, end: f.problem.offset - 1 };
    expected = f.firstOffset + f.frames;
  }
  return { strays, zeroRuns, end: expected - 1 };
}

/** Each segment file's good frames and first problem: one read of each. */
async function scanFiles(logDir: string, fl: FileLayer): Promise<FileScan[]> {
  const reader = new SegmentReader(fl);
  const out: FileScan[] = [];
  for (const { file, firstOffset } of await listSegments(logDir, fl)) {
    let buf: Buffer;
    try {
      buf = await reader.read(file);
    } catch (error) {
      // Not a segment at all (a directory, a FIFO, a file far too large): the whole entry is the damage.
      if (!(error instanceof DamagedStore)) throw error;
      out.push({ file, firstOffset, frames: 0, problem: { file, position: 0, reason: error.reason, offset: firstOffset }, lastOffsetSeen: -1 });
      continue;
    }
    const { info, problem, zeroTail, headerBad } = scanSegmentBytes(buf, file, firstOffset);
    const frames = info.positions.length;
    // Frames after the problem: what a resync finds counts as seen (and dropped, if cut).
    const afterProblem = problem && !headerBad && !zeroTail ? resync(buf, problem.position + 1)?.lastOffset ?? -1 : -1;
    const lastOffsetSeen = Math.max(frames > 0 ? firstOffset + frames - 1 : -1, afterProblem);
    const rejoin = afterProblem >= 0 && problem ? rejoinAfter(buf, file, problem) : undefined;
    out.push({ file, firstOffset, frames, ...(problem ? { problem } : {}), ...(zeroTail ? { zeroRun: true as const } : {}), lastOffsetSeen, ...(rejoin ? { rejoin } : {}) });
  }
  return out;
}

/**
 * The first valid frame past `problem` from which the frames chain on, intact, to the end of the
 * file (or to the zeros ahead of the writer): scanned as the segment of their own they would become.
 */
function rejoinAfter(buf: Buffer, file: string, problem: Damage): Rejoin | undefined {
  for (let p = problem.position + 1; p + segmentHeaderBytes <= buf.length; p++) {
    if (typeof checkFrame(buf, p) === 'string') continue;
    const firstOffset = frameOffsetAt(buf, p);
    if (firstOffset < problem.offset) continue; // an older copy of a frame: the log goes on only past the damage
    const scanned = scanSegmentBytes(Buffer.concat([encodeSegmentHeader(firstOffset), buf.subarray(p)]), file, firstOffset);
    if (scanned.problem && !scanned.zeroTail) return undefined; // damaged again further on: the cut stays where it is
    const frames = scanned.info.positions.length;
    return { position: p, end: p + scanned.info.end - segmentHeaderBytes, firstOffset, frames };
  }
  return undefined;
}

/**
 * A log that starts past offset 0 replays onto a snapshot at or above its first offset - 1: with
 * none that verifies, what lay below is gone and no cut or move brings it back (the open refuses it
 * too). Refused before anything is moved, naming what would: a backup, or a valid snapshot put back.
 */
async function refuseLogWithoutBase(dir: string, logFirst: number, end: number, fl: FileLayer): Promise<void> {
  if (logFirst <= 0) return;
  for (const ref of await listSnapshots(dir, fl)) {
    if (ref.offset + 1 >= logFirst && ref.offset <= end && (await verifySnapshotFiles(ref, fl)) === undefined) return;
  }
  throw new DamagedStore(path.join(dir, 'snapshots'), 0,
    `no valid snapshot at or above offset ${logFirst - 1}, and the log starts at offset ${logFirst}: the transactions below it are gone, and no repair brings them back`,
    'restore the store from a backup (`ioboxx-memory restore`), or put a valid snapshot back in snapshots/');
}

/** The strays and zero runs of a chain, in words. */
function describeFixes(chain: Chain, files: readonly FileScan[]): string {
  const holderOf = (stray: FileScan) => files.filter((f) => f.firstOffset < stray.firstOffset && f.file !== stray.file && !chain.strays.includes(f)).at(-1);
  return [
    ...chain.zeroRuns.map((z) => `${z.reason} of sealed segment ${path.basename(z.file)} (offset ${z.offset - 1}), and the next segment goes on at offset ${z.offset}: only the zeros were cut`),
    ...chain.strays.map((s) => `${path.basename(s.file)} lies inside the offsets segment ${path.basename(holderOf(s)?.file ?? '?')} holds, so it is no segment of this log (${s.problem?.reason ?? 'a copy'}): moved aside whole`),
  ].join('; ');
}

/**
 * No segment is left: the open would load the newest snapshot and start the log after it, but a
 * checkpoint shows more was acknowledged, so it refuses. Reopen from the newest verified snapshot;
 * every other snapshot goes aside (older ones have no log to replay, newer ones did not verify).
 */
async function repairWithoutLog(dir: string, logDir: string, nowMs: number, fl: FileLayer): Promise<RepairReport> {
  const checkpointRead = await checkpointOffset(logDir, fl);
  if (checkpointRead === notAFile) {
    const aside = await asideDirOf(logDir, nowMs, fl);
    const movedAside = [await moveAside(fl, path.join(logDir, checkpointFileName), path.join(aside, checkpointFileName))];
    await syncMoves(dir, logDir, aside, fl);
    return { damaged: true, file: path.join(logDir, checkpointFileName), position: 0, reason: `${checkpointFileName} is not a regular file, so no clean-close checkpoint: moved aside whole`, droppedTransactions: 0, movedAside, asideDir: aside };
  }
  const checkpoint = checkpointRead;
  if (checkpoint === undefined) return { damaged: false, droppedTransactions: 0, movedAside: [] };
  const refs = await listSnapshots(dir, fl);
  let from: SnapshotRef | undefined;
  for (const ref of refs) {
    if ((await verifySnapshotFiles(ref, fl)) === undefined) {
      from = ref;
      break;
    }
  }
  if (!from) {
    throw new DamagedStore(logDir, 0,
      `no segment is left in the log and no snapshot verifies, but the clean-close checkpoint shows offsets 0..${checkpoint} were acknowledged: there is nothing to recover them from`,
      'restore the store from a backup (`ioboxx-memory restore`), or put its segments or a valid snapshot back; repair changed nothing');
  }
  const others = refs.filter((ref) => ref !== from);
  const aside = await asideDirOf(logDir, nowMs, fl);
  const movedAside: string[] = [];
  for (const ref of others) movedAside.push(await moveAside(fl, ref.dir, path.join(aside, `snapshot-${path.basename(ref.dir)}`)));
  movedAside.push(await moveAside(fl, path.join(logDir, checkpointFileName), path.join(aside, checkpointFileName)));
  await syncMoves(dir, logDir, aside, fl);
  const droppedThrough = Math.max(checkpoint, ...others.map((ref) => ref.offset));
  const droppedTransactions = Math.max(0, droppedThrough - from.offset);
  return {
    damaged: true, file: logDir, position: 0,
    reason: `no segment is left in the log, but the clean-close checkpoint shows offsets through ${checkpoint} were acknowledged; the store reopens from snapshot ${path.basename(from.dir)} (offset ${from.offset})`,
    ...(droppedTransactions > 0 ? { droppedFrom: from.offset + 1, droppedThrough } : {}),
    droppedTransactions, movedAside, asideDir: aside,
  };
}

async function asideDirOf(logDir: string, nowMs: number, fl: FileLayer): Promise<string> {
  const aside = path.join(logDir, `repair-${nowMs}`);
  await fl.mkdirp(aside);
  return aside;
}

/** Rename `from` to `to`; returns `from`, for the report. */
async function moveAside(fl: FileLayer, from: string, to: string): Promise<string> {
  await fl.rename(from, to);
  return from;
}

/** Renames are durable once their directories are synced. */
async function syncMoves(dir: string, logDir: string, aside: string, fl: FileLayer): Promise<void> {
  await fl.fsyncDir(aside);
  await fl.fsyncDir(logDir);
  await fl.fsyncDir(path.join(dir, 'snapshots')).catch(() => undefined); // none when the store never took one
}

const notAFile = Symbol('not a regular file');

/** The clean-close checkpoint's offset; an unreadable one counts as none, as the open counts it; a directory there (which the open cannot remove) is `notAFile`, moved aside. */
async function checkpointOffset(logDir: string, fl: FileLayer): Promise<number | undefined | typeof notAFile> {
  try {
    const checkpoint = await readCheckpoint(logDir, fl);
    return checkpoint === 'unreadable' ? undefined : checkpoint?.offset;
  } catch (error) {
    if (error instanceof DamagedStore && error.file === path.join(logDir, checkpointFileName)) return notAFile;
    throw error;
  }
}

/** The last segment's file and size: where a log that lost its tail now ends. */
async function logEnd(logDir: string, fl: FileLayer): Promise<{ file: string; position: number }> {
  const last = (await listSegments(logDir, fl)).at(-1);
  if (!last) return { file: logDir, position: 0 };
  const handle = await fl.open(last.file, 'r');
  try {
    return { file: last.file, position: await handle.size() };
  } finally {
    await handle.close();
  }
}
