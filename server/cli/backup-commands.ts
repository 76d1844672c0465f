/**
 * `ioboxx-memory backup TENANT DIR [--upload]` and `ioboxx-memory restore DIR TENANT [--from-s3 NAME]`.
 *
 * backup reads the tenant's store from its files (storage/backup: newest verified snapshot plus
 * the durable log after it), so it runs beside a server that keeps serving that tenant; with
 * --upload it then copies the verified backup to S3 under tenants/TENANT/backups/.
 * restore refuses a backup that does not verify, refuses a store that is open or not empty,
 * and proves the restored state hash with the engine before the store appears in place, then
 * records TENANT as known (known-tenants.ts); with --from-s3 it first downloads (and verifies)
 * that backup into DIR.
 * Each writes its directory (the backup's DIR, the download's DIR, the restored store) in a
 * scratch directory put in place at the end (storage/backup/scratch-dir.ts): SIGINT or SIGTERM
 * removes that scratch before the process exits, so an interrupted run leaves nothing half-written.
 */
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { openAuditBucket } from '../../storage/audit/audit-bucket.js';
import { backupScratchDirs } from '../../storage/backup/backup-destination.js';
import { restoreBackup } from '../../storage/backup/restore.js';
import { downloadBackup, listUploadedBackups, uploadBackup, uploadPrefix, type BackupBucket } from '../../storage/backup/s3-copy.js';
import { backupManifestFileName } from '../../storage/backup/backup-manifest.js';
import { removeCommand, scratchDirOf } from '../../storage/backup/scratch-dir.js';
import { shellWord } from '../../storage/shell-word.js';
import { backupStoreDirectory, realPathSoFar } from '../../storage/backup/take-backup.js';
import { MemoryError } from '../../storage/errors.js';
import type { S3Config } from '../config.js';
import { configWithFile } from '../config-file.js';
import { lockHolder } from '../../storage/store-lock.js';
import { recordKnownTenant } from '../tenants/known-tenants.js';
import { tenantDir, tenantsRoot } from '../tenants/tenant-dir.js';
import { parseTenantId } from '../tenants/tenant-id.js';
import { holdsStore } from '../tenants/vanished-store.js';
import { dataDirArgument, dataDirOptionHelp, operatorDataDir } from './cli-data-dir.js';
import { backupDirRole, directoryFilesystemVerdict } from './directory-filesystem.js';
import { failCommand, printReport } from './command-output.js';
import { explainS3Failure } from './s3-failure.js';
import { signalExitCodes, ttyProgress, type ProgressFn } from './progress.js';

interface Options {
  readonly json?: boolean;
  readonly dataDir?: string;
  readonly upload?: boolean;
  readonly fromS3?: string;
}

async function memoryModule() {
  // Loaded on use so --help never loads the whole memory module.
  return (await import('../../tools/index.js')).memoryModule;
}

/** The S3 configuration of a run that uses S3 (its failures are then explained as S3's: s3-failure.ts). */
let s3InUse: S3Config | undefined;

function configuredBucket(): BackupBucket {
  const s3 = configWithFile({}).s3;
  if (!s3) throw new MemoryError('invalid_argument', 'S3 is not configured', 'set S3_ENDPOINT, S3_REGION, S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  s3InUse = s3;
  return openAuditBucket(s3);
}

/**
 * The upload of a backup failed: the local backup is whole all the same (it is in place before the
 * upload starts), and S3 holds no manifest of it. Said with the S3 failure, so the operator neither
 * takes DIR for a failed backup nor looks for it in S3.
 */
function uploadFailed(error: unknown, backupDir: string, endOffset: number): MemoryError {
  const e = error as Error & { hint?: string };
  const code = error instanceof MemoryError ? error.code : 'unavailable';
  return new MemoryError(code, `the backup in ${backupDir} is whole (end offset ${endOffset}), but its upload to S3 failed: ${e.message}`,
    `${e.hint ? `${e.hint}; then ` : ''}take the backup again with --upload, into a new directory (S3 holds no manifest of this one, so no restore lists it)`);
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
    failCommand(explainS3Failure(error, s3InUse), opts.json === true);
  }
}

/**
 * Run `work`; should SIGINT or SIGTERM end the process meanwhile, `interrupted(signal)` cleans up
 * and says what is left, and with --json that is still one object on stdout. A progress bar's
 * own handler, when it has one, runs after this one, restores the terminal and exits; the message
 * then follows it, at exit. Otherwise this handler exits.
 */
async function whenInterrupted<R>(opts: Options, interrupted: (signal: string) => string, work: () => Promise<R>): Promise<R> {
  const onSignal = (signal: keyof typeof signalExitCodes) => {
    const message = interrupted(signal);
    if (opts.json === true) process.stdout.write(`${JSON.stringify({ ok: false, code: 'interrupted', message })}\n`);
    const say = () => process.stderr.write(`error: ${message}\n`);
    if (process.listenerCount(signal) > 1) {
      process.once('exit', say);
      return;
    }
    say();
    process.exit(signalExitCodes[signal]);
  };
  const signals = Object.keys(signalExitCodes) as (keyof typeof signalExitCodes)[];
  for (const signal of signals) process.on(signal, onSignal);
  try {
    return await work();
  } finally {
    for (const signal of signals) process.off(signal, onSignal);
  }
}

/** Tries at removing an interrupted run's scratch, and the pause between two tries (2 s in all at most). */
const scratchRemoveTriesMax = 40;
const scratchRemoveRetryDelayMs = 50;

/**
 * Removes `dir` whole from inside a signal handler (synchronously: the process exits right after).
 * A file operation already on the thread pool may still add an entry meanwhile, and rmSync's own
 * retries only retry the final rmdir, never listing the directory again (ENOTEMPTY to the end: seen
 * in CI under load): so each try here is a whole new removal, after a pause that lets such an
 * operation finish. None can start meanwhile, the event loop being held here.
 */
function removeWholeNow(dir: string): void {
  for (let tries = 1; ; tries++) {
    try {
      rmSync(dir, { recursive: true, force: true });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOTEMPTY' || tries >= scratchRemoveTriesMax) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, scratchRemoveRetryDelayMs);
    }
  }
}

/**
 * Run `work`, which writes `target` in one of `scratches` and puts it in place; on SIGINT or
 * SIGTERM remove the scratch first (it can be as large as the store, and no other process knows
 * it is garbage), so an interrupted run leaves `target` as it was.
 */
function scratchRemovedWhenInterrupted<R>(scratches: readonly string[], target: string, opts: Options, command: string, work: () => Promise<R>, note?: string): Promise<R> {
  return whenInterrupted(opts, (signal) => {
    const also = note ? `; ${note}` : '';
    const partial = scratches.filter((s) => existsSync(s));
    try {
      for (const s of partial) removeWholeNow(s);
    } catch (error) {
      return `${command} interrupted by ${signal}: nothing was written to ${target}, but its partial copy could not be removed (${(error as NodeJS.ErrnoException).code}): ${partial.map(removeCommand).join('; ')}${also}`;
    }
    if (partial.length === 0 && holdsFiles(target)) return `${command} interrupted by ${signal} as it ended: ${target} is whole`;
    return `${command} interrupted by ${signal}: nothing was written to ${target}${partial.length > 0 ? `, and its partial copy ${partial.join(', ')} is removed` : ''}${also}`;
  }, work);
}

function holdsFiles(dir: string): boolean {
  try {
    return readdirSync(dir).length > 0;
  } catch {
    return false; // absent: nothing was put there
  }
}

/**
 * A backup put among the tenants' stores would be taken for one (listed, opened, served under
 * its directory's name) and the store it sits in would carry it into its own backups: refused.
 */
async function refuseInsideTenants(backupDir: string, dataDir: string): Promise<void> {
  // Where each really is: a symbolic link on either path (a data directory named through a link,
  // a backup path through one) must not carry the backup into the tenants' folder unseen.
  const root = await realPathSoFar(tenantsRoot(dataDir));
  const real = await realPathSoFar(backupDir);
  if (real !== root && !real.startsWith(root + path.sep)) return;
  throw new MemoryError('invalid_argument', `${backupDir} lies in the data directory's ${path.basename(root)}/ folder, where every directory is taken for a tenant's store`,
    'put the backup outside the data directory (or at least outside its tenants/ folder)');
}

/**
 * A backup taken or downloaded into DIR: refused before anything is written when DIR is on a
 * pseudo filesystem (a backup under /proc never returned), with a warning when it is in memory.
 */
async function checkBackupDirFilesystem(backupDir: string): Promise<void> {
  const filesystem = await directoryFilesystemVerdict(backupDir, backupDirRole);
  if (filesystem === undefined) return;
  if ('refused' in filesystem) throw new MemoryError('invalid_argument', filesystem.refused);
  process.stderr.write(`warning: ${filesystem.notDurable}\n`);
}

/** The restore of backup directory `dir` as `tenant`, as a hint names it (quoted for a POSIX shell where it must be). */
function restoreCommand(dir: string, tenant: string, dataDir: string): string {
  return `\`ioboxx-memory restore ${shellWord(dir)} ${tenant}${dataDirArgument(dataDir)}\``;
}

export function registerBackupCommands(program: Command): void {
  program
    .command('backup')
    .description("copy a tenant's store (verified snapshot + the durable log after it) into DIR while the server keeps serving it")
    .argument('<tenant>', 'tenant id')
    .argument('<dir>', 'backup directory (new or empty)')
    .option('--upload', 'then copy the backup to S3 under tenants/TENANT/backups/ (S3_* configuration)')
    .option('--json', 'one JSON object on stdout')
    .option('--data-dir <dir>', dataDirOptionHelp)
    .action((tenant: string, dir: string, opts: Options) => withProgress(opts,
      async (onProgress) => {
        const dataDir = operatorDataDir(opts.dataDir);
        const storeDir = tenantDir(dataDir, tenant);
        // A mistyped tenant or the wrong data directory: said as such, with where to look.
        if (!(await holdsStore(storeDir))) throw new MemoryError('not_found', `no store of tenant ${tenant} in ${dataDir}`, `see \`ioboxx-memory tenants list${dataDirArgument(dataDir)}\``);
        const bucket = opts.upload === true ? configuredBucket() : undefined; // a missing S3 setting fails before the copy
        const backupDir = path.resolve(dir);
        await refuseInsideTenants(backupDir, dataDir);
        await checkBackupDirFilesystem(backupDir);
        const module = await memoryModule();
        const report = await scratchRemovedWhenInterrupted(await backupScratchDirs(backupDir), backupDir, opts, 'backup',
          () => backupStoreDirectory(storeDir, { backupDir, module, tenant, onProgress }));
        if (!bucket) return { ...report, uploaded: undefined };
        const prefix = uploadPrefix({ ...report.manifest, tenant });
        const uploaded = await whenInterrupted(opts,
          (signal) => `backup interrupted by ${signal} during its upload: ${backupDir} is a whole backup; S3 holds at most part of it under ${prefix}, without the manifest that is uploaded last, so no restore lists or downloads it`,
          () => uploadBackup(backupDir, bucket, onProgress)).catch((error: unknown) => {
          throw uploadFailed(explainS3Failure(error, s3InUse), backupDir, report.manifest.endOffset);
        });
        return { ...report, uploaded };
      },
      (report) => {
        const m = report.manifest;
        return [
          `backup of ${tenant} in ${report.backupDir}`,
          `end offset   ${m.endOffset}`,
          `state hash   ${m.stateHash} (proven by opening a copy)`,
          `snapshot     ${m.snapshot ? m.snapshot.offset : 'none'}, log from ${m.logFirstOffset}`,
          `history      ${m.history?.id ?? 'none (the store was never opened by a version with history ids)'}`,
          `files        ${m.files.length}, ${report.bytes} bytes`,
          ...report.snapshotsSkipped.map((s) => `skipped snapshot: ${s}`),
          ...report.partialsRemoved.map((p) => `removed      ${p} (what an interrupted backup into ${report.backupDir} left)`),
          ...report.partialsElsewhere.map((p) => `left         ${p}: what an interrupted backup into another directory left; remove it with ${removeCommand(p)}`),
          ...(report.uploaded ? [`uploaded     ${report.uploaded.prefix} (restore with --from-s3 ${report.uploaded.name})`] : []),
        ];
      },
      (report) => ({ ok: true, tenant, backupDir: report.backupDir, endOffset: report.manifest.endOffset, stateHash: report.manifest.stateHash,
        snapshotOffset: report.manifest.snapshot?.offset ?? null, history: report.manifest.history?.id ?? null, files: report.manifest.files.length, bytes: report.bytes,
        snapshotsSkipped: report.snapshotsSkipped, partialsRemoved: report.partialsRemoved, partialsElsewhere: report.partialsElsewhere,
        uploaded: report.uploaded ?? null }),
    ));

  program
    .command('restore')
    .description("verify a backup (every file's SHA-256), restore it as TENANT's store and prove the restored state hash")
    .argument('<dir>', 'backup directory (with --from-s3: a new or empty directory to download into)')
    .argument('<tenant>', 'tenant id (its store must be absent or empty, and not open)')
    .option('--from-s3 <name>', 'download backup NAME from tenants/TENANT/backups/ first ("latest" for the newest)')
    .option('--json', 'one JSON object on stdout')
    .option('--data-dir <dir>', dataDirOptionHelp)
    .action((dir: string, tenant: string, opts: Options) => withProgress(opts,
      async (onProgress) => {
        const dataDir = operatorDataDir(opts.dataDir);
        const target = tenantDir(dataDir, tenant);
        const holder = lockHolder(target);
        if (holder !== null) throw new MemoryError('conflict', `the store of ${tenant} is open in process ${holder}`, 'stop that process first');
        // Said as the tenant's store, not as a target directory the operator never named (DIR is the backup).
        if (existsSync(target) && statSync(target).isDirectory() && readdirSync(target).length > 0) {
          throw new MemoryError('conflict', `tenant ${tenant} already has a store in ${target}`,
            `to replace it with this backup, move it to the trash first: \`ioboxx-memory tenants delete ${tenant} --yes${dataDirArgument(dataDir)}\`, then restore again`);
        }
        if (opts.fromS3 !== undefined) {
          const downloadDir = path.resolve(dir);
          // A download is a backup directory too: among the stores it would be taken for one (into
          // tenants/TENANT, the very target, it fills the store the restore then refuses as not empty).
          await refuseInsideTenants(downloadDir, dataDir);
          // What an earlier download left whole (its restore failed or was interrupted): restored as it is, not downloaded again.
          if (existsSync(path.join(downloadDir, backupManifestFileName))) {
            throw new MemoryError('conflict', `${downloadDir} already holds a backup (the download of an earlier restore, say): a download never overwrites one`,
              `to restore that backup, run the restore without --from-s3: ${restoreCommand(downloadDir, tenant, dataDir)}; to download again, choose a new directory`);
          }
          await checkBackupDirFilesystem(downloadDir);
          const bucket = configuredBucket();
          const name = opts.fromS3 === 'latest' ? (await listUploadedBackups(bucket, parseTenantId(tenant))).at(-1) : opts.fromS3;
          if (name === undefined) throw new MemoryError('not_found', `no backup of ${tenant} in S3`);
          await scratchRemovedWhenInterrupted(await backupScratchDirs(downloadDir), downloadDir, opts, `the download of backup ${name}`,
            () => downloadBackup(bucket, tenant, name, downloadDir));
        }
        // After a download, a failed or interrupted restore says the download is whole, and how to restore it without downloading again.
        const downloaded = opts.fromS3 === undefined ? undefined : `the backup downloaded into ${path.resolve(dir)} is whole: restore it without --from-s3: ${restoreCommand(path.resolve(dir), tenant, dataDir)}`;
        const report = await scratchRemovedWhenInterrupted([scratchDirOf(target, 'restore')], target, opts, 'restore',
          async () => restoreBackup(path.resolve(dir), target, { module: await memoryModule(), expectedTenant: tenant, onProgress }), downloaded)
          .catch((error: unknown) => {
            if (downloaded === undefined || !(error instanceof MemoryError)) throw error;
            throw new MemoryError(error.code, error.message, error.hint ? `${error.hint}; ${downloaded}` : downloaded);
          });
        // Known from now on: should this store vanish too, the server refuses instead of starting over.
        await recordKnownTenant(dataDir, tenant);
        return report;
      },
      (report) => [
        `restored ${report.backupDir} as ${tenant} in ${report.targetDir}`,
        `end offset   ${report.endOffset}`,
        `state hash   ${report.stateHash} (verified: the restored store opens with it)`,
        `history      ${report.history.id}, new: ${report.history.ancestors[0] ? `forked from ${report.history.ancestors[0].id} at offset ${report.history.ancestors[0].forkOffset}` : 'the backup names no history of its store'} (offsets after ${report.endOffset} are not the ones the backed-up store gave)`,
        `files        ${report.files}, ${report.bytes} bytes, every SHA-256 verified`,
      ],
      (report) => ({ ok: true, ...report }),
    ));
}
