/**
 * `ioboxx-memory audit ship [--tenant T]` ships every staged audit event to S3 now (a tenant
 * that fails is named and makes it exit 1; the others ship regardless);
 * `ioboxx-memory audit close-gap --tenant T` records events removed from staging as lost, so that
 * tenant's shipping goes on; `ioboxx-memory audit verify [--tenant T] [--json]` proves the chain in the bucket and
 * exits non-zero naming every problem; it also compares the access logs of the tenant stores in
 * the data directory with the trail (unless --no-stores). Configuration comes from the
 * environment (README).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config.js';
import { configWithFile } from '../config-file.js';
import { auditHoleSource, auditTenantPattern, openControlPlane, type ControlPlane } from '../../storage/control/control-plane.js';
import { MemoryError } from '../../storage/errors.js';
import { failCommand } from './command-output.js';
import { explainS3Failure } from './s3-failure.js';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { shipAudit, shipLeaseMs } from '../../storage/audit/shipper.js';
import { seqRangeText, verifyAudit, type AuditReport } from '../../storage/audit/verifier.js';
import type { StoreCheckSummary } from '../../storage/audit/store-cross-check.js';
import { auditProblemHints } from '../../storage/audit/audit-problem.js';
import { accessLogSource } from '../../storage/control/audit-staging.js';
import { databaseRefusalHint, isDatabaseError } from '../../storage/control/database-error.js';
import { tenantsRoot } from '../tenants/tenant-dir.js';
import { tenantStoresIn } from './audit-tenant-stores.js';
import { ttyProgress } from './progress.js';

/** Exit codes: 0 whole, 1 problems found (verify) or the operation failed, 2 not configured. */
const exitNotConfigured = 2;

interface AuditOptions {
  readonly tenant?: string;
  readonly json?: boolean;
  readonly dataDir?: string;
}

const s3Missing =
  'S3 is not configured: set S3_ENDPOINT, S3_REGION, S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ' +
  '(audit batches stay staged in Postgres until then)';

function configFor(options: AuditOptions): Config {
  return configWithFile({ dataDir: options.dataDir ? path.resolve(options.dataDir) : undefined });
}

/** With --json the refusal is one object on stdout too, as every other failure of a command is. */
function bucketOf(config: Config, json: boolean | undefined): AuditBucket {
  if (!config.s3) {
    if (json === true) process.stdout.write(`${JSON.stringify({ ok: false, code: 'not_configured', message: s3Missing })}\n`);
    process.stderr.write(`error: ${s3Missing}\n`);
    process.exit(exitNotConfigured);
  }
  return openAuditBucket(config.s3);
}

/**
 * Without DATABASE_URL the control plane is the embedded database a server made in the data
 * directory (`DATA/control-pg`). A mistyped --data-dir must be said as such: opening it would
 * create a new, empty database there, and report "no hole" or a chain of nothing staged.
 */
async function requireEmbeddedDatabase(config: Config): Promise<void> {
  if (config.database.url !== undefined) return;
  const hint = "name the server's data directory with --data-dir DIR (or IOBOXX_DATA_DIR), or its Postgres with DATABASE_URL";
  const dataDir = await stat(config.dataDir).catch(() => undefined);
  if (dataDir?.isDirectory() !== true) throw new MemoryError('not_found', `data directory ${config.dataDir} does not exist`, hint);
  if (await stat(path.join(config.dataDir, 'control-pg')).catch(() => undefined) === undefined) {
    throw new MemoryError('not_found', `no embedded control-plane database in ${config.dataDir} (control-pg): no server ran its control plane on this data directory, so nothing was staged here`, hint);
  }
}

async function controlOf(config: Config): Promise<ControlPlane> {
  await requireEmbeddedDatabase(config);
  return openControlPlane({
    ...(config.database.url ? { databaseUrl: config.database.url } : {}),
    ...(config.database.directUrl ? { databaseDirectUrl: config.database.directUrl } : {}),
    dataDir: config.dataDir,
  });
}

/**
 * A failure of the control plane's Postgres said as one: pg's own errors name no service (`connect
 * ECONNREFUSED 127.0.0.1:5432`), and they are not S3's (which carry the SDK's `$metadata`).
 */
function explainDatabaseFailure(error: unknown, config: Config | undefined): unknown {
  // The SDK's own errors (they carry `$metadata`) and a socket error at the S3 endpoint are S3's (s3-failure.ts).
  if (!isDatabaseError(error) || (typeof error === 'object' && error !== null && '$metadata' in error)) return error;
  const e = error as Error & { address?: unknown; port?: unknown };
  const settings = 'DATABASE_URL (and DATABASE_DIRECT_URL)';
  const refused = databaseRefusalHint(error);
  if (refused !== undefined) return new MemoryError('unavailable', `the control plane's Postgres refused: ${e.message}`, refused);
  const where = config?.database.url === undefined
    ? `the embedded control-plane database in ${path.join(config?.dataDir ?? '.', 'control-pg')}`
    : `the control plane's Postgres${typeof e.address === 'string' && typeof e.port === 'number' ? ` at ${e.address}:${e.port}` : ''}`;
  return new MemoryError('unavailable', `${where} could not be reached: ${e.message}`,
    config?.database.url === undefined ? 'check that database (the server that made it ran on this data directory), or name the server\'s Postgres with DATABASE_URL' : `check ${settings}, and that Postgres runs and this host reaches it`);
}

/** The command's failure, as every command reports one (one JSON object with --json); an S3 or Postgres failure said as one. */
function fail(error: unknown, json: boolean | undefined, config?: Config): never {
  const s3 = explainS3Failure(error, config?.s3);
  failCommand(s3 === error ? explainDatabaseFailure(error, config) : s3, json);
}

/** --tenant names a tenant id of the audit trail (a typo must not verify as an empty, whole chain). */
function tenantOption(tenant: string | undefined): string | undefined {
  if (tenant !== undefined && !auditTenantPattern.test(tenant)) {
    throw new MemoryError('invalid_argument', `--tenant ${JSON.stringify(tenant)} is not a tenant id (${auditTenantPattern})`);
  }
  return tenant;
}

function storeLine(s: StoreCheckSummary): string {
  const held = s.checkedFromSeq === null ? 'no access-log row' : `seq ${s.checkedFromSeq}..${s.newestSeq}${s.checkedFromSeq > 1 ? ` (rows before ${s.checkedFromSeq} aged out of the store)` : ''}`;
  const pending = s.pendingRows > 0 ? `, ${s.pendingRows} pending from seq ${s.pendingFromSeq} (not staged yet${s.workWaiting ? ': control-pending' : ''})` : '';
  const live = s.openByPid !== null ? `, read while process ${s.openByPid} holds it` : '';
  // A store whose history restarted is checked against its generation of the source (access_log#2, ...).
  const generation = s.source === accessLogSource ? '' : ` of ${s.source} (its history restarted)`;
  return `store ${s.tenant}: ${s.rowsChecked} access-log rows checked against S3 and staging, staged through seq ${s.stagedThroughSeq}${generation}; store holds ${held}${pending}${live}`;
}

export function reportLines(report: AuditReport): string[] {
  return [
    ...report.tenants.map((t) => `tenant ${t.tenant}: ${t.batches} batches, ${t.events} events, through seq ${t.lastSeq}, head ${t.headSha256}`),
    ...report.tenants.flatMap((t) => t.eventsLost === undefined ? [] : [
      `note: tenant ${t.tenant}: ${t.eventsLost.count} event${t.eventsLost.count === 1 ? '' : 's'} recorded lost in the chain (audit close-gap: removed from staging before they shipped): seq ${t.eventsLost.seqs}`,
    ]),
    ...(report.stores ?? []).map(storeLine),
    ...(report.duplicateVersions ?? []).map(
      (d) => `note: tenant=${d.tenant} key=${d.key} version=${d.versionId} holds the very bytes of the shipped version ${d.shippedVersionId} under COMPLIANCE (an upload sent twice): nothing altered`,
    ),
    ...report.problems.map(
      (p) => `PROBLEM ${p.kind} tenant=${p.tenant}${p.batchSeq !== undefined ? ` batch=${p.batchSeq}` : ''}${p.key ? ` key=${p.key}` : ''}${p.versionId ? ` version=${p.versionId}` : ''}: ${p.detail}`,
    ),
    ...[...new Set(report.problems.map((p) => p.kind))].map((kind) => `what to do about ${kind}: ${auditProblemHints[kind]}`),
    report.ok ? 'audit verified: chain whole' : `audit NOT verified: ${report.problems.length} problem(s)`,
  ];
}

/** The report as --json prints it: each problem with what to do about it. */
function reportJson(report: AuditReport): unknown {
  return { ...report, problems: report.problems.map((p) => ({ ...p, hint: auditProblemHints[p.kind] })) };
}

/** Why a tenant was left: its events are not shipped by this run, and that is no failure. */
const busyText =
  `another shipper holds its lease: a server running ships them, or one stopped within the last ${shipLeaseMs / 1000} s left it; run again after that`;

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('ship and verify the immutable audit trail in S3 Object Lock');

  audit
    .command('ship')
    .description('ship every staged audit event to S3 now (hash-chained COMPLIANCE batches)')
    .option('--tenant <tenant>', 'only this tenant')
    .option('--data-dir <dir>', 'data directory (overrides IOBOXX_DATA_DIR; holds the embedded control-plane database)')
    .option('--json', 'one JSON object on stdout')
    .action(async (options: AuditOptions) => {
      let control: ControlPlane | undefined;
      let config: Config | undefined;
      try {
        config = configFor(options);
        const tenant = tenantOption(options.tenant);
        const bucket = bucketOf(config, options.json);
        control = await controlOf(config);
        const result = await shipAudit(control, bucket, {
          retentionDays: config.auditRetentionDays,
          force: true,
          ...(tenant ? { tenant } : {}),
        });
        process.stdout.write(
          options.json ? `${JSON.stringify({ ok: result.failedTenants.length === 0, ...result })}\n` : `shipped ${result.batches} batches (${result.events} events)${result.busyTenants.length ? `; busy: ${result.busyTenants.join(', ')} (${busyText})` : ''}\n`,
        );
        // The other tenants were shipped all the same; each failed one is named.
        for (const f of result.failedTenants) {
          process.stderr.write(`error: audit shipping of tenant ${f.tenant} failed (${f.code}): ${f.message}${f.hint ? `\n  ${f.hint}` : ''}\n`);
        }
        if (result.failedTenants.length > 0) process.exitCode = 1;
      } catch (error) {
        fail(error, options.json, config);
      } finally {
        await control?.close();
      }
    });

  audit
    .command('close-gap')
    .description('record events removed from a tenant\'s staging before they shipped as lost (audit_hole events in their place), so its shipping, stopped at the hole, goes on')
    .requiredOption('--tenant <tenant>', 'the tenant whose staging has the hole (audit ship and audit verify name it)')
    .option('--data-dir <dir>', 'data directory (overrides IOBOXX_DATA_DIR; holds the embedded control-plane database)')
    .option('--json', 'one JSON object on stdout')
    .action(async (options: AuditOptions) => {
      let control: ControlPlane | undefined;
      let config: Config | undefined;
      try {
        config = configFor(options);
        const tenant = tenantOption(options.tenant)!;
        control = await controlOf(config);
        const closed = await control.closeAuditStagingHoles(tenant);
        const ranges = closed.map((r) => `seq ${seqRangeText(r.fromSeq, r.toSeq)}`).join(', ');
        process.stdout.write(options.json
          ? `${JSON.stringify({ ok: true, tenant, closed })}\n`
          : closed.length === 0
            ? `tenant ${tenant}: no hole in its staging\n`
            : `tenant ${tenant}: ${ranges} recorded as lost (${auditHoleSource} events in the chain); its shipping goes on\n`);
      } catch (error) {
        fail(error, options.json, config);
      } finally {
        await control?.close();
      }
    });

  audit
    .command('verify')
    .description('walk every object version in the audit bucket and prove chain, counts and hashes, and compare the tenant stores\' access logs with it; exits 1 on any problem')
    .option('--tenant <tenant>', 'only this tenant')
    .option('--data-dir <dir>', 'data directory (overrides IOBOXX_DATA_DIR): its tenant stores are cross-checked')
    .option('--no-control-plane', 'do not cross-check the control plane records of shipped batches (nor the stores, which need them)')
    .option('--no-stores', 'do not compare the access logs of the tenant stores in the data directory with the trail')
    .option('--json', 'one JSON object on stdout')
    .action(async (options: AuditOptions & { controlPlane?: boolean; stores?: boolean }) => {
      let control: ControlPlane | undefined;
      let config: Config | undefined;
      let ok = false;
      const progress = ttyProgress();
      try {
        config = configFor(options);
        const tenant = tenantOption(options.tenant);
        const bucket = bucketOf(config, options.json);
        if (options.controlPlane !== false) control = await controlOf(config);
        // On whenever the control plane is checked: the stores are the one copy Postgres cannot rewrite.
        const stores = control && options.stores !== false ? await tenantStoresIn(config.dataDir, progress.onProgress) : undefined;
        const report = await verifyAudit(bucket, {
          ...(tenant ? { tenant } : {}), ...(control ? { control } : {}), ...(stores ? { stores } : {}), onProgress: progress.onProgress,
          retentionDays: config.auditRetentionDays,
        });
        progress.stop();
        const lines = reportLines(report);
        // A tenant with nothing shipped verifies as whole: say so, so that a typo is seen.
        if (tenant !== undefined && report.tenants.length === 0) lines.unshift(`tenant ${tenant}: no audit batch in the bucket`);
        if (report.stores?.length === 0) lines.unshift(`no tenant store${tenant !== undefined ? ` of ${tenant}` : ''} under ${tenantsRoot(config.dataDir)}: no access log cross-checked`);
        if (!stores) lines.unshift(`tenant stores not cross-checked (${control ? '--no-stores' : '--no-control-plane'})`);
        process.stdout.write(options.json ? `${JSON.stringify(reportJson(report))}\n` : `${lines.join('\n')}\n`);
        ok = report.ok;
      } catch (error) {
        progress.stop();
        fail(error, options.json, config);
      } finally {
        await control?.close();
      }
      if (!ok) process.exitCode = 1;
    });
}
