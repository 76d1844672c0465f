/**
 * `ioboxx-memory tenants list [--check] [--json]`: every tenant store under DATA/tenants with its
 * size on disk, last offset, newest snapshot and whether a live process has it open, and every
 * known tenant (known-tenants.ts) whose store has vanished. The status reads only each store's
 * last segment; --check reads every segment's frames and the kept snapshots too, says ok or where
 * the damage is, and exits 3 when any store is damaged or vanished. Read-only: no store is
 * opened, so it is safe beside a running server.
 *
 * `tenants forget T --yes` and `tenants delete T --yes` retire a tenant (tenant-retirement.ts):
 * each changes the data directory only with --yes, and says what it did.
 */
import { readdir, readlink, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { Command } from 'commander';
import { leftoverOf, removeCommand, type Leftover } from '../../storage/backup/scratch-dir.js';
import { MemoryError } from '../../storage/errors.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { listSegments, SegmentReader } from '../../storage/log/recovery.js';
import { checkStoreFiles, readStoreStatus, type StoreCheck, type StoreStatus } from '../ops/store-status.js';
import { listKnownTenants } from '../tenants/known-tenants.js';
import { existingTenantDir, tenantsRoot } from '../tenants/tenant-dir.js';
import { isTenantId } from '../tenants/tenant-id.js';
import { deleteTenant, forgetTenant, trashRoot } from '../tenants/tenant-retirement.js';
import { holdsStore, type VanishedStore } from '../tenants/vanished-store.js';
import { dataDirArgument, dataDirOptionHelp, operatorDataDir } from './cli-data-dir.js';
import { failCommand, printReport } from './command-output.js';
import { ttyProgress, type ProgressFn } from './progress.js';

export type TenantRow =
  | (Omit<StoreStatus, 'dir'> & { readonly tenant: string; readonly open: boolean; readonly check?: StoreCheck })
  /** A tenant directory whose status could not be read (one bad store never hides the others). */
  | { readonly tenant: string; readonly problem: string }
  /** A known tenant whose store is gone: its next open is refused until it is restored or forgotten. */
  | { readonly tenant: string; readonly vanished: VanishedStore['why'] };

export interface ListOptions {
  /** Read every segment and snapshot, not only the last segment. */
  readonly check?: boolean;
  /** Segments checked so far of all the stores' (phase `check`). */
  readonly onProgress?: ProgressFn;
}

export async function listTenants(dataDir: string, options: ListOptions = {}): Promise<TenantRow[]> {
  const root = tenantsRoot(dataDir);
  const entries = await readdir(root, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  // Names that are not tenant ids (a restore's scratch directory, stray files) are not tenants.
  const dirs = new Set(entries.filter((e) => e.isDirectory() && isTenantId(e.name)).map((e) => e.name));
  // A symlink in a tenant's place is no store the server opens (tenant-dir.ts refuses it): listed as what it is, not as vanished.
  const links = new Set(entries.filter((e) => e.isSymbolicLink() && isTenantId(e.name)).map((e) => e.name));
  const known = new Set(await listKnownTenants(dataDir));
  const tenants = [...new Set([...dirs, ...links, ...known])].sort();
  // One bar for the whole run: every store's segments, counted before any is read (a store that
  // cannot be listed counts none: its row says why).
  let segmentsTotal = 0;
  if (options.check) {
    for (const tenant of dirs) segmentsTotal += (await listSegments(path.join(root, tenant, 'log'), nodeFileLayer).catch(() => [])).length;
  }
  let segmentsDone = 0;
  const rows: TenantRow[] = [];
  const reader = new SegmentReader(nodeFileLayer); // one buffer for every store's segments
  for (const tenant of tenants) {
    const dir = path.join(root, tenant);
    try {
      if (!dirs.has(tenant)) {
        // Not a directory in its place: the refusal every command gives (forget, delete, the server's open), and its way out.
        await existingTenantDir(dataDir, tenant).catch(async (error: unknown) => {
          if (!links.has(tenant)) throw error;
          const target = await readlink(dir).catch(() => undefined);
          throw new MemoryError('forbidden',
            `${(error as Error).message} but a symlink${target === undefined ? '' : ` to ${target}`}: the server refuses it as unsafe`,
            `to serve that store, move the link aside and move the directory it points to into its place; \`tenants forget ${tenant} --yes\` works once nothing is there`);
        });
        rows.push({ tenant, vanished: 'directory missing' });
        continue;
      }
      if (known.has(tenant) && !(await holdsStore(dir))) {
        rows.push({ tenant, vanished: 'no log or snapshot in it' });
        continue;
      }
      const { dir: _dir, ...status } = await readStoreStatus(dir, reader);
      const doneBefore = segmentsDone;
      const check = options.check
        ? await checkStoreFiles(dir, (done) => options.onProgress?.('check', (segmentsDone = doneBefore + done), segmentsTotal), reader)
        : undefined;
      rows.push({ tenant, ...status, open: status.openByPid !== null, ...(check && { check }) });
    } catch (error) {
      const e = error as Error & { hint?: string };
      rows.push({ tenant, problem: e.hint ? `${e.message}; ${e.hint}` : e.message });
    }
  }
  return rows;
}

/**
 * The scratch copies restores into this data directory left (`tenants/T.restoring-PID`, up to a
 * whole store each): one whose process ended is removed only by the next restore of T, so it is
 * named here, with the command that removes it; one whose process runs is a restore under way.
 */
export async function restoresLeftBehind(dataDir: string): Promise<Leftover[]> {
  const root = tenantsRoot(dataDir);
  const names = await readdir(root).catch(() => [] as string[]);
  return names.sort().flatMap((name) => leftoverOf(path.join(root, name), 'restore') ?? []);
}

function leftoverLine(l: Leftover): string {
  const tenant = path.basename(l.target);
  return l.running
    ? `restoring ${l.dir}: a restore of ${tenant} under way (process ${l.pid})`
    : `left      ${l.dir}: what an interrupted restore of ${tenant} (process ${l.pid}) left, not a store; remove it with ${removeCommand(l.dir)}`;
}

/** What --check makes exit 3: a store damaged, vanished, or not readable at all. */
function anyUnhealthy(rows: readonly TenantRow[]): boolean {
  return rows.some((r) => 'problem' in r || 'vanished' in r || r.check?.ok === false);
}

function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function checkCell(check: StoreCheck): string {
  if (check.ok) return check.changing ? `ok as far as read (${check.changing})` : 'ok';
  return `DAMAGED: ${check.damage.map((d) => `${d.file}${d.position === undefined ? '' : ` at byte ${d.position}`}: ${d.reason}`).join('; ')}`;
}

function tableLines(dataDir: string, rows: readonly TenantRow[], checked: boolean): string[] {
  if (rows.length === 0) return [`no tenant stores under ${tenantsRoot(dataDir)}`];
  const header = ['TENANT', 'SIZE', 'LAST OFFSET', 'LAST SNAPSHOT', 'OPEN', ...(checked ? ['CHECK'] : [])];
  const body = rows.map((r) => {
    if ('problem' in r) return [r.tenant, '-', '-', '-', `PROBLEM: ${r.problem}`];
    if ('vanished' in r) return [r.tenant, '-', '-', '-', `VANISHED (${r.vanished}): restore it, or \`tenants forget ${r.tenant} --yes${dataDirArgument(dataDir)}\``];
    return [
      r.tenant,
      humanBytes(r.bytesOnDisk),
      String(r.lastOffset),
      r.lastSnapshot ? `${r.lastSnapshot.offset} at ${new Date(r.lastSnapshot.createdAtMs).toISOString()}` : '-',
      r.open ? `yes (pid ${r.openByPid})` : 'no',
      ...(r.check ? [checkCell(r.check)] : []),
    ];
  });
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((row) => row[c]?.length ?? 0)));
  return [header, ...body].map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
}

/** A mistyped data directory is said as such, not listed as one with no tenant (`--check` would pass it). */
async function requireDataDir(dataDir: string): Promise<void> {
  const hint = 'name it with --data-dir DIR or IOBOXX_DATA_DIR (default ./data, in the working directory)';
  const info = await stat(dataDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new MemoryError('not_found', `data directory ${dataDir} does not exist`, hint);
    throw error;
  });
  if (!info.isDirectory()) throw new MemoryError('invalid_argument', `data directory ${dataDir} is not a directory`, hint);
}

export function registerTenantCommands(program: Command): void {
  const tenants = program.command('tenants').description('tenant stores in the data directory');
  tenants
    .command('list')
    .description('list tenant stores: size on disk, last offset, newest snapshot, open or not, and known tenants whose store vanished (read-only; safe beside a running server)')
    .option('--check', "read every segment's frames (CRC) and the kept snapshots; exit 3 when any store is damaged or vanished")
    .option('--json', 'one JSON object on stdout')
    .option('--data-dir <dir>', dataDirOptionHelp)
    .action(async (opts: { check?: boolean; json?: boolean; dataDir?: string }) => {
      const progress = ttyProgress();
      try {
        const dataDir = operatorDataDir(opts.dataDir);
        await requireDataDir(dataDir);
        const rows = await listTenants(dataDir, { check: opts.check === true, onProgress: progress.onProgress });
        const leftBehind = await restoresLeftBehind(dataDir);
        progress.stop();
        const unhealthy = opts.check === true && anyUnhealthy(rows);
        printReport(opts.json === true, { ok: !unhealthy, dataDir, tenants: rows, restoresLeftBehind: leftBehind },
          () => [...tableLines(dataDir, rows, opts.check === true), ...leftBehind.map(leftoverLine)]);
        // The exit code of a store that refuses to open: a script sees the damage without parsing.
        if (unhealthy) process.exitCode = 3;
      } catch (error) {
        progress.stop();
        failCommand(error, opts.json === true);
      }
    });
  retireCommand(tenants, 'forget', "drop the record that TENANT had a store, so its next use starts an empty one (for a store that vanished and will not be restored)",
    `forgetting it lets its next use start an empty store`,
    async (dataDir, tenant) => {
      const report = await forgetTenant(dataDir, tenant);
      return { report, lines: [report.forgotten ? `forgot tenant ${tenant}: its next use starts an empty store` : `tenant ${tenant} was not known; nothing changed`] };
    });
  retireCommand(tenants, 'delete', "move TENANT's store directory into DATA/trash/<UTC time>/ (nothing is removed), then forget TENANT; refused while a process has the store open",
    'deleting it moves its store to the trash and lets its next use start an empty one',
    async (dataDir, tenant) => {
      const report = await deleteTenant(dataDir, tenant, Date.now());
      return {
        report,
        lines: [
          report.movedTo === null ? `tenant ${tenant} had no store directory; nothing moved` : `moved the store of ${tenant} to ${report.movedTo}`,
          report.forgotten ? `forgot tenant ${tenant}: its next use starts an empty store` : `tenant ${tenant} had no record to drop`,
          ...(report.movedTo === null ? [] : [`(nothing was removed: empty ${trashRoot(dataDir)} when you no longer need it)`]),
        ],
      };
    });
}

interface RetireOptions {
  readonly yes?: boolean;
  readonly json?: boolean;
  readonly dataDir?: string;
}

/** `tenants forget|delete TENANT --yes`: changes the data directory only when asked with --yes, then says what it did. */
function retireCommand(tenants: Command, name: string, description: string, without: string,
  retire: (dataDir: string, tenant: string) => Promise<{ report: object; lines: string[] }>): void {
  tenants
    .command(name)
    .description(description)
    .argument('<tenant>', 'tenant id')
    .option('--yes', 'do it (without, nothing changes)')
    .option('--json', 'one JSON object on stdout')
    .option('--data-dir <dir>', dataDirOptionHelp)
    .action(async (tenant: string, opts: RetireOptions) => {
      try {
        if (opts.yes !== true) throw new MemoryError('invalid_argument', `tenant ${tenant}: ${without}; nothing changed`, 'add --yes to do it');
        const dataDir = operatorDataDir(opts.dataDir);
        // A mistyped data directory is said as such, as `tenants list` does, not "T was not known; nothing changed" (exit 0).
        await requireDataDir(dataDir);
        const { report, lines } = await retire(dataDir, tenant);
        printReport(opts.json === true, { ok: true, ...report }, () => lines);
      } catch (error) {
        failCommand(error, opts.json === true);
      }
    });
}
