/**
 * `ioboxx-memory tenants list [--json]`: every tenant store under DATA/tenants with its size
 * on disk, last offset, newest snapshot and whether a live process has it open. Read-only:
 * no store is opened, so it is safe beside a running server.
 *
 * `tenants forget T --yes` and `tenants delete T --yes` retire a tenant (tenant-retirement.ts):
 * each changes the data directory only with --yes, and says what it did.
 */
import { readdir } from 'node:fs/promises';
import * as path from 'node:path';
import type { Command } from 'commander';
import { readStoreStatus, type StoreStatus } from '../ops/store-status.js';
import { MemoryError } from '../../storage/errors.js';
import { tenantsRoot } from '../tenants/tenant-dir.js';
import { deleteTenant, forgetTenant, trashRoot } from '../tenants/tenant-retirement.js';
import { isTenantId } from '../tenants/tenant-id.js';
import { dataDirOptionHelp, operatorDataDir } from './cli-data-dir.js';
import { failCommand, printReport } from './command-output.js';

export type TenantRow =
  | (Omit<StoreStatus, 'dir'> & { readonly tenant: string; readonly open: boolean })
  /** A tenant directory whose status could not be read (one bad store never hides the others). */
  | { readonly tenant: string; readonly problem: string };

export async function listTenants(dataDir: string): Promise<TenantRow[]> {
  const root = tenantsRoot(dataDir);
  const entries = await readdir(root, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  const rows: TenantRow[] = [];
  // Names that are not tenant ids (a restore's scratch directory, stray files) are not tenants.
  for (const entry of entries.filter((e) => e.isDirectory() && isTenantId(e.name)).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    try {
      const { dir: _dir, ...status } = await readStoreStatus(path.join(root, entry.name));
      rows.push({ tenant: entry.name, ...status, open: status.openByPid !== null });
    } catch (error) {
      rows.push({ tenant: entry.name, problem: (error as Error).message });
    }
  }
  return rows;
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

function tableLines(dataDir: string, rows: readonly TenantRow[]): string[] {
  if (rows.length === 0) return [`no tenant stores under ${tenantsRoot(dataDir)}`];
  const header = ['TENANT', 'SIZE', 'LAST OFFSET', 'LAST SNAPSHOT', 'OPEN'];
  const body = rows.map((r) => 'problem' in r ? [r.tenant, '-', '-', '-', `PROBLEM: ${r.problem}`] : [
    r.tenant,
    humanBytes(r.bytesOnDisk),
    String(r.lastOffset),
    r.lastSnapshot ? `${r.lastSnapshot.offset} at ${new Date(r.lastSnapshot.createdAtMs).toISOString()}` : '-',
    r.open ? `yes (pid ${r.openByPid})` : 'no',
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((row) => row[c]!.length)));
  return [header, ...body].map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
}

export function registerTenantCommands(program: Command): void {
  const tenants = program.command('tenants').description('tenant stores in the data directory');
  tenants
    .command('list')
    .description('list tenant stores: size on disk, last offset, newest snapshot, open or not (read-only; safe beside a running server)')
    .option('--json', 'one JSON object on stdout')
    .option('--data-dir <dir>', dataDirOptionHelp)
    .action(async (opts: { json?: boolean; dataDir?: string }) => {
      try {
        const dataDir = operatorDataDir(opts.dataDir);
        const rows = await listTenants(dataDir);
        printReport(opts.json === true, { dataDir, tenants: rows }, () => tableLines(dataDir, rows));
      } catch (error) {
        failCommand(error, opts.json === true);
      }
    });

  tenants
    .command('forget')
    .description("drop the record that TENANT had a store, so its next use starts an empty one (for a store that vanished and will not be restored)")
    .argument('<tenant>', 'tenant id')
    .option('--yes', 'do it (without, nothing changes)')
    .option('--json', 'one JSON object on stdout')
    .option('--data-dir <dir>', dataDirOptionHelp)
    .action(async (tenant: string, opts: RetireOptions) => {
      try {
        requireYes(opts, `forgetting ${tenant} lets its next use start an empty store`);
        const report = await forgetTenant(operatorDataDir(opts.dataDir), tenant);
        printReport(opts.json === true, { ok: true, ...report }, () => [report.forgotten
          ? `forgot tenant ${tenant}: its next use starts an empty store`
          : `tenant ${tenant} was not known; nothing changed`]);
      } catch (error) {
        failCommand(error, opts.json === true);
      }
    });
  tenants
    .command('delete')
    .description("move TENANT's store directory into DATA/trash/<UTC time>/ (nothing is removed), then forget TENANT; refused while a process has the store open")
    .argument('<tenant>', 'tenant id')
    .option('--yes', 'do it (without, nothing changes)')
    .option('--json', 'one JSON object on stdout')
    .option('--data-dir <dir>', dataDirOptionHelp)
    .action(async (tenant: string, opts: RetireOptions) => {
      try {
        requireYes(opts, `deleting ${tenant} moves its store to the trash and lets its next use start an empty one`);
        const dataDir = operatorDataDir(opts.dataDir);
        const report = await deleteTenant(dataDir, tenant, Date.now());
        printReport(opts.json === true, { ok: true, ...report }, () => [
          report.movedTo === null ? `tenant ${tenant} had no store directory; nothing moved` : `moved the store of ${tenant} to ${report.movedTo}`,
          report.forgotten ? `forgot tenant ${tenant}: its next use starts an empty store` : `tenant ${tenant} had no record to drop`,
          ...(report.movedTo === null ? [] : [`(nothing was removed: empty ${trashRoot(dataDir)} when you no longer need it)`]),
        ]);
      } catch (error) {
        failCommand(error, opts.json === true);
      }
    });
}

interface RetireOptions {
  readonly yes?: boolean;
  readonly json?: boolean;
  readonly dataDir?: string;
}

/** A command that changes the data directory runs only when asked with --yes. */
function requireYes(opts: RetireOptions, what: string): void {
  if (opts.yes !== true) throw new MemoryError('invalid_argument', `${what}; nothing changed`, 'add --yes to do it');
}
