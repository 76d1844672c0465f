/** `ioboxx-memory store verify|inspect|snapshot|repair DIR`: the engine's operator commands. */
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { Command } from 'commander';
import { DamagedStore, MemoryError, StoreLockHeld } from '../../storage/errors.js';
import { historyFileName, type StoreHistory } from '../../storage/history.js';
import { historyOfFiles } from '../../storage/history-evidence.js';
import { inspectProblems, inspectStore, type InspectReport } from '../../storage/inspect.js';
import type { FileLayer } from '../../storage/io/file-layer.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { OverlayFileLayer } from '../../storage/io/overlay-file-layer.js';
import { repairStore } from '../../storage/repair.js';
import { Store } from '../../storage/store.js';
import { tenantsDirName } from '../tenants/tenant-dir.js';
import { dataDirArgument } from './cli-data-dir.js';
import { failCommand, printReport } from './command-output.js';
import { retiredTableNote, tableLines } from './table-lines.js';
import { ttyProgress } from './progress.js';

async function statOrNone(file: string): Promise<Stats | undefined> {
  return stat(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
    throw error;
  });
}

/** DIR must already be a store: opening or repairing a mistyped path would make an empty store there. */
async function requireStoreDir(dir: string): Promise<void> {
  const hint = "a store directory holds log/ (a tenant's is DATA/tenants/ID)";
  const info = await statOrNone(dir);
  if (!info) throw new MemoryError('not_found', `${dir} does not exist`, hint);
  if (!info.isDirectory()) throw new MemoryError('invalid_argument', `${dir} is not a directory`, hint);
  if (!(await statOrNone(path.join(dir, 'log')))?.isDirectory()) {
    throw new MemoryError('invalid_argument', `${dir} is not a store directory (no log/ in it)`, hint);
  }
}

async function openForCli(dir: string, fileLayer?: FileLayer): Promise<Store> {
  await requireStoreDir(dir);
  const { memoryModule } = await import('../../tools/index.js');
  const progress = ttyProgress();
  try {
    return await Store.open({ dir, module: memoryModule, onProgress: progress.onProgress, ...(fileLayer ? { fileLayer } : {}) });
  } finally {
    progress.stop();
  }
}

/**
 * A tenant command for a hint about the store in `dir`: for a tenant's store (DATA/tenants/ID)
 * with its id and ` --data-dir DATA`, so that, pasted, it acts on this store and not on ./data or
 * IOBOXX_DATA_DIR; for a store elsewhere with the placeholder TENANT.
 */
function onItsTenant(dir: string, command: (tenant: string) => string): string {
  const store = path.resolve(dir);
  const tenants = path.dirname(store);
  if (path.basename(tenants) !== tenantsDirName) return command('TENANT');
  return `${command(path.basename(store))}${dataDirArgument(path.dirname(tenants))}`;
}

/**
 * A store a live process holds (a serving server) is refused by its LOCK; its hint says what to
 * run instead while it serves, before stopping that process.
 */
function whileServed(error: unknown, instead: string): unknown {
  if (!(error instanceof StoreLockHeld) || error.holderPid === process.pid) return error;
  return new MemoryError('conflict', error.message, `${instead}; or stop process ${error.holderPid} first`);
}

/** The offset of the snapshot an open loaded, or `none` (the engine's -1: the whole log was replayed). */
function snapshotCell(offset: number): string {
  return offset >= 0 ? String(offset) : 'none';
}

/**
 * A store's history as verify and inspect print it (null: none yet, or damaged, which the open's
 * verdict names). `recoveredFrom`: history.json is missing and the id is the one that file records
 * (history-evidence.ts); `written` says whether this command put history.json back from it.
 */
function historyLine(history: StoreHistory | null, recoveredFrom: string | null, written: boolean): string {
  if (history === null) return 'history      none yet: the first open that writes gives the store one';
  const parent = history.ancestors[0];
  const since = history.origin === 'restored'
    ? `restored at offset ${history.startOffset}, ${parent ? `forked from ${parent.id} after offset ${parent.forkOffset}` : 'from a backup naming no history'}`
    : history.origin === 'adopted' ? `given at offset ${history.startOffset} (the store is older than history ids)` : 'since the store was created';
  const recovered = recoveredFrom === null ? ''
    : written ? `\n             RECOVERED: ${historyFileName} was missing; put back from ${recoveredFrom}`
    : `\n             RECOVERED: ${historyFileName} is missing; the id is the one ${recoveredFrom} records, and the next writing open (\`store verify\`, a server) puts it back`;
  return `history      ${history.id} (${since})${recovered}`;
}

/** The open's verdict as inspect prints it. */
function recoveryLine(recovery: NonNullable<InspectReport['recovery']>): string {
  if ('notRun' in recovery) return `open: ${recovery.notRun}`;
  if (recovery.opens) return `open: ok (read-only): snapshot ${snapshotCell(recovery.snapshotOffset)}, last offset ${recovery.lastOffset}, state hash ${recovery.stateHash}`;
  return `open: PROBLEM: the store refuses to open: ${recovery.file} at byte ${recovery.position}: ${recovery.reason}${recovery.hint ? `\n  ${recovery.hint}` : ''}`;
}

export function registerStoreCommands(program: Command): void {
  const store = program.command('store').description('inspect, verify, snapshot and repair a store directory');

  store.command('verify')
    .description('open the store (recovering it), print last offset, rows per table and the canonical state hash')
    .argument('<dir>', 'store directory')
    .option('--json', 'one JSON object on stdout')
    .option('--read-only', 'change no file: recover in memory and report what opening would do (refused while a live process has the store open)')
    .action(async (dir: string, opts: { json?: boolean; readOnly?: boolean }) => {
      try {
        const readOnly = !!opts.readOnly;
        // Read-only: the engine's own open and close, every change they make kept in memory.
        const s = await openForCli(dir, readOnly ? new OverlayFileLayer() : undefined);
        // A read-only open of a store without a history file gives it one in memory only: not its id.
        const history = readOnly && s.report.historyWritten ? null : s.history;
        const historyRecoveredFrom = s.report.historyRecoveredFrom ?? null;
        const retiredTables = s.retiredTables();
        const report = {
          ok: true, dir, readOnly, lastOffset: s.lastOffset, stateHash: s.stateHash(), history, historyRecoveredFrom, tables: s.tableCounts(), retiredTables, rowBytes: s.rowBytes(),
          snapshotOffset: s.report.snapshotOffset, replayedFrames: s.report.replayedFrames,
          snapshotsSkipped: s.report.snapshotsSkipped, tornTail: s.report.torn ?? null,
        };
        await s.close();
        const torn = report.tornTail;
        printReport(!!opts.json, report, () => [
          `store ${dir}${readOnly ? ' (read-only: no file changed)' : ''}`, `last offset  ${report.lastOffset}`, `state hash   ${report.stateHash}`, historyLine(history, historyRecoveredFrom, !readOnly),
          `snapshot     ${snapshotCell(report.snapshotOffset)} (+${report.replayedFrames} frames replayed)`,
          `row bytes    ${report.rowBytes.live} live (what IOBOXX_TENANT_ROW_BYTES_MAX bounds), ${report.rowBytes.dead} dead`,
          ...tableLines(report.tables, retiredTables),
          ...(torn && !readOnly ? [`torn tail cut at ${torn.file}:${torn.position} (${torn.bytes} bytes kept in ${torn.keptAt})`] : []),
          ...(torn && readOnly ? [`torn tail: would cut ${torn.bytes} bytes at ${torn.file}:${torn.position} (kept in ${torn.keptAt}); \`store verify\` does it`] : []),
          ...report.snapshotsSkipped.map((s) => `skipped snapshot: ${s}`),
        ]);
      } catch (error) {
        failCommand(whileServed(error, `to read a store while it is served, run \`ioboxx-memory store inspect ${dir}\` (or \`${onItsTenant(dir, () => 'tenants list --check')}\`)`), !!opts.json);
      }
    });

  store.command('inspect')
    .description('list segments (frame ranges, problems) and snapshots without changing anything')
    .argument('<dir>', 'store directory')
    .option('--json', 'one JSON object on stdout')
    .action(async (dir: string, opts: { json?: boolean }) => {
      // Every segment read, then the open run in memory: as long as a verify, with its bars.
      const progress = ttyProgress();
      try {
        await requireStoreDir(dir);
        const { memoryModule } = await import('../../tools/index.js');
        const report = await inspectStore(dir, undefined, (done, total) => progress.onProgress('check', done, total), undefined, memoryModule, progress.onProgress);
        progress.stop();
        // Damaged: null here, and the open's verdict below names the file.
        const ofFiles = await historyOfFiles(dir, nodeFileLayer).catch((error: unknown) => {
          if (error instanceof DamagedStore) return undefined;
          throw error;
        });
        const history = ofFiles?.history ?? null;
        const historyRecoveredFrom = ofFiles?.recoveredFrom ?? null;
        const problems = inspectProblems(report).length;
        printReport(!!opts.json, { ok: problems === 0, ...report, history, historyRecoveredFrom }, () => [
          historyLine(history, historyRecoveredFrom, false),
          ...(report.openByPid !== null ? [`open in process ${report.openByPid}: read as it is now; what the writer is in the middle of is marked in progress`] : []),
          `segments of ${dir}:`,
          ...report.segments.map((s) => `  ${s.file}  offsets ${s.firstOffset}..${s.lastOffset ?? '-'}  ${s.frames} frames  ${s.bytes} bytes${s.zeroTailBytes !== undefined ? ` (of them ${s.zeroTailBytes} zeros ahead of the writer)` : ''}${s.problem ? `  PROBLEM at byte ${s.problem.position}: ${s.problem.reason}` : ''}${s.inProgress ? `  in progress: ${s.inProgress}` : ''}`),
          'snapshots:',
          ...report.snapshots.map((s) => `  ${s.dir}  offset ${s.offset}  ${s.problem ? `PROBLEM: ${s.problem}` : s.inProgress ? `in progress: ${s.inProgress}` : `ok ${s.stateHash}`}`),
          ...(report.recovery ? [recoveryLine(report.recovery)] : []),
          ...(report.retiredTables?.length ? [`retired tables: ${report.retiredTables.join(', ')} (${retiredTableNote})`] : []),
          ...(report.changing ? [`changing: ${report.changing}`] : []),
        ]);
        // The same exit code as a store that refuses to open: a script sees the damage without parsing.
        if (problems > 0) process.exitCode = 3;
      } catch (error) {
        progress.stop();
        failCommand(error, !!opts.json);
      }
    });

  store.command('snapshot')
    .description('take a snapshot now (binary + JSON + manifest)')
    .argument('<dir>', 'store directory')
    .option('--json', 'one JSON object on stdout')
    .action(async (dir: string, opts: { json?: boolean }) => {
      try {
        const s = await openForCli(dir);
        const snap = await s.snapshot();
        await s.close();
        // An empty store has no state to write (the engine answers offset -1 and writes nothing).
        const written = snap.offset >= 0;
        printReport(!!opts.json, { ok: true, written, ...snap }, () => [written ? `snapshot at offset ${snap.offset}, state hash ${snap.stateHash}` : 'nothing to snapshot: the store holds no transaction yet']);
      } catch (error) {
        failCommand(whileServed(error, `a served store takes its own snapshots (every IOBOXX_SNAPSHOT_EVERY_TX transactions, after IOBOXX_SNAPSHOT_EVERY_MS, and when it closes); to copy it while it is served, run \`ioboxx-memory ${onItsTenant(dir, (tenant) => `backup ${tenant} DIR`)}\``), !!opts.json);
      }
    });

  store.command('repair')
    .description('keep what a verified snapshot and the intact log recover, cut the rest at the first damage (moved aside), and report what was dropped')
    .argument('<dir>', 'store directory')
    .option('--json', 'one JSON object on stdout')
    .action(async (dir: string, opts: { json?: boolean }) => {
      try {
        await requireStoreDir(dir);
        const report = await repairStore(dir, Date.now());
        printReport(!!opts.json, { ok: true, ...report }, () => report.damaged
          ? [`damage in ${report.file} at byte ${report.position}: ${report.reason}`,
            report.droppedTransactions > 0
              ? `dropped ${report.droppedTransactions} transactions (offsets ${report.droppedFrom}..${report.droppedThrough})`
              : 'dropped no transaction',
            ...report.movedAside.map((m) => `moved aside: ${m}`),
            ...(report.asideDir === undefined ? [] : [`kept in ${report.asideDir} (nothing deleted)`])]
          : ['no damage found; nothing changed']);
      } catch (error) {
        failCommand(error, !!opts.json);
      }
    });
}
