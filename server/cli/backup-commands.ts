/**
 * `ioboxx-memory backup TENANT DIR` and `ioboxx-memory restore DIR TENANT`.
 *
 * backup reads the tenant's store from its files (storage/backup: newest verified snapshot plus
 * the durable log after it), so it runs beside a server that keeps serving that tenant.
 * restore refuses a backup that does not verify, refuses a store that is open or not empty,
 * and proves the restored state hash with the engine before the store appears in place.
 */
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import type { Command } from 'commander';
import { MemoryError } from '../../storage/errors.js';
import { restoreBackup } from '../../storage/backup/restore.js';
import { backupStoreDirectory } from '../../storage/backup/take-backup.js';
import { lockHolder } from '../ops/store-status.js';
import { tenantDir, tenantsRoot } from '../tenants/tenant-dir.js';
import { dataDirOptionHelp, operatorDataDir } from './cli-data-dir.js';
import { failCommand, printReport } from './command-output.js';
import { ttyProgress, type ProgressFn } from './progress.js';

interface Options {
  readonly json?: boolean;
  readonly dataDir?: string;
}

async function memoryModule() {
  // Loaded on use so --help never loads the whole memory module.
  return (await import('../../tools/index.js')).memoryModule;
}

/** Run one long command with a TTY progress bar; print its report or fail with its error. */
async function withProgress<R>(opts: Options, work: (onProgress: ProgressFn) => Promise<R>, lines: (report: R) => string[], json: (report: R) => unknown): Promise<void> {
  const progress = ttyProgress();
  try {
    const report = await work(progress.onProgress);
    progress.stop();
    printReport(opts.json === true, json(report), () => lines(report));
  } catch (error) {
    progress.stop();
    failCommand(error, opts.json === true);
  }
}

export function registerBackupCommands(program: Command): void {
  program
    .command('backup')
    .description("copy a tenant's store (verified snapshot + the durable log after it) into DIR while the server keeps serving it")
    .argument('<tenant>', 'tenant id')
    .argument('<dir>', 'backup directory (new or empty)')
    .option('--json', 'one JSON object on stdout')
    .option('--data-dir <dir>', dataDirOptionHelp)
    .action((tenant: string, dir: string, opts: Options) => withProgress(opts,
      async (onProgress) => {
        const storeDir = tenantDir(operatorDataDir(opts.dataDir), tenant);
        return backupStoreDirectory(storeDir, { backupDir: path.resolve(dir), module: await memoryModule(), tenant, onProgress });
      },
      (report) => {
        const m = report.manifest;
        return [
          `backup of ${tenant} in ${report.backupDir}`,
          `end offset   ${m.endOffset}`,
          `state hash   ${m.stateHash} (proven by opening a copy)`,
          `snapshot     ${m.snapshot ? m.snapshot.offset : 'none'}, log from ${m.logFirstOffset}`,
          `files        ${m.files.length}, ${report.bytes} bytes`,
          ...report.snapshotsSkipped.map((s) => `skipped snapshot: ${s}`),
        ];
      },
      (report) => ({ ok: true, tenant, backupDir: report.backupDir, endOffset: report.manifest.endOffset, stateHash: report.manifest.stateHash,
        snapshotOffset: report.manifest.snapshot?.offset ?? null, files: report.manifest.files.length, bytes: report.bytes, snapshotsSkipped: report.snapshotsSkipped }),
    ));

  program
    .command('restore')
    .description("verify a backup (every file's SHA-256), restore it as TENANT's store and prove the restored state hash")
    .argument('<dir>', 'backup directory')
    .argument('<tenant>', 'tenant id (its store must be absent or empty, and not open)')
    .option('--json', 'one JSON object on stdout')
    .option('--data-dir <dir>', dataDirOptionHelp)
    .action((dir: string, tenant: string, opts: Options) => withProgress(opts,
      async (onProgress) => {
        const dataDir = operatorDataDir(opts.dataDir);
        const target = tenantDir(dataDir, tenant);
        const holder = lockHolder(target);
        if (holder !== null) throw new MemoryError('conflict', `the store of ${tenant} is open in process ${holder}`, 'stop that process first');
        await mkdir(tenantsRoot(dataDir), { recursive: true });
        return restoreBackup(path.resolve(dir), target, { module: await memoryModule(), expectedTenant: tenant, onProgress });
      },
      (report) => [
        `restored ${report.backupDir} as ${tenant} in ${report.targetDir}`,
        `end offset   ${report.endOffset}`,
        `state hash   ${report.stateHash} (verified: the restored store opens with it)`,
        `files        ${report.files}, ${report.bytes} bytes, every SHA-256 verified`,
      ],
      (report) => ({ ok: true, ...report }),
    ));
}
