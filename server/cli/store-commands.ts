/** `ioboxx-memory store verify|inspect|snapshot|repair DIR`: the engine's operator commands. */
import type { Command } from 'commander';
import { inspectStore } from '../../storage/inspect.js';
import { repairStore } from '../../storage/repair.js';
import { Store } from '../../storage/store.js';
import { ttyProgress } from './progress.js';

async function openForCli(dir: string): Promise<Store> {
  const { memoryModule } = await import('../../tools/index.js');
  const progress = ttyProgress();
  try {
    return await Store.open({ dir, module: memoryModule, onProgress: progress.onProgress });
  } finally {
    progress.stop();
  }
}

function print(json: boolean, value: unknown, lines: () => string[]): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${lines().join('\n')}\n`);
}

/** Errors a person can act on: message and, for damage, the file, the byte and the repair command. */
function fail(error: unknown): never {
  const e = error as Error & { code?: string; file?: string; position?: number };
  process.stderr.write(`error: ${e.message}\n`);
  process.exit(e.code === 'damaged_store' ? 3 : 1);
}

export function registerStoreCommands(program: Command): void {
  const store = program.command('store').description('inspect, verify, snapshot and repair a store directory');

  store.command('verify')
    .description('open the store (recovering it), print last offset, rows per table and the canonical state hash')
    .argument('<dir>', 'store directory')
    .option('--json', 'one JSON object on stdout')
    .action(async (dir: string, opts: { json?: boolean }) => {
      try {
        const s = await openForCli(dir);
        const report = {
          dir, lastOffset: s.lastOffset, stateHash: s.stateHash(), tables: s.tableCounts(),
          snapshotOffset: s.report.snapshotOffset, replayedFrames: s.report.replayedFrames,
          snapshotsSkipped: s.report.snapshotsSkipped, tornTail: s.report.torn ?? null,
        };
        await s.close();
        print(!!opts.json, report, () => [
          `store ${dir}`, `last offset  ${report.lastOffset}`, `state hash   ${report.stateHash}`,
          `snapshot     ${report.snapshotOffset} (+${report.replayedFrames} frames replayed)`,
          ...Object.entries(report.tables).map(([t, n]) => `  ${t.padEnd(24)} ${n}`),
          ...(report.tornTail ? [`torn tail cut at ${report.tornTail.file}:${report.tornTail.position} (${report.tornTail.bytes} bytes kept in ${report.tornTail.keptAt})`] : []),
          ...report.snapshotsSkipped.map((s) => `skipped snapshot: ${s}`),
        ]);
      } catch (error) {
        fail(error);
      }
    });

  store.command('inspect')
    .description('list segments (frame ranges, problems) and snapshots without changing anything')
    .argument('<dir>', 'store directory')
    .option('--json', 'one JSON object on stdout')
    .action(async (dir: string, opts: { json?: boolean }) => {
      try {
        const report = await inspectStore(dir);
        print(!!opts.json, report, () => [
          `segments of ${dir}:`,
          ...report.segments.map((s) => `  ${s.file}  offsets ${s.firstOffset}..${s.lastOffset ?? '-'}  ${s.frames} frames  ${s.bytes} bytes${s.zeroTailBytes !== undefined ? ` (of them ${s.zeroTailBytes} zeros ahead of the writer)` : ''}${s.problem ? `  PROBLEM at byte ${s.problem.position}: ${s.problem.reason}` : ''}`),
          'snapshots:',
          ...report.snapshots.map((s) => `  ${s.dir}  offset ${s.offset}  ${s.problem ? `PROBLEM: ${s.problem}` : `ok ${s.stateHash}`}`),
        ]);
      } catch (error) {
        fail(error);
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
        print(!!opts.json, snap, () => [`snapshot at offset ${snap.offset}, state hash ${snap.stateHash}`]);
      } catch (error) {
        fail(error);
      }
    });

  store.command('repair')
    .description('cut the log at the first damage, moving the rest aside, and report what was dropped')
    .argument('<dir>', 'store directory')
    .option('--json', 'one JSON object on stdout')
    .action(async (dir: string, opts: { json?: boolean }) => {
      try {
        const report = await repairStore(dir, Date.now());
        print(!!opts.json, report, () => report.damaged
          ? [`damage in ${report.file} at byte ${report.position}: ${report.reason}`,
            `dropped ${report.droppedTransactions} transactions (offsets ${report.droppedFrom}..${report.droppedThrough})`,
            ...report.movedAside.map((m) => `moved aside: ${m}`)]
          : ['no damage found; nothing changed']);
      } catch (error) {
        fail(error);
      }
    });
}
