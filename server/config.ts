/**
 * Configuration from the environment, parsed once with zod. Every bad value is reported in
 * one error (fix them all in one go), and `redactedConfig` is the only way to print it.
 */
import { loadLimitsCeiling, loadLimitsDefault, runningCallsMaxCeiling, runningCallsMaxDefault, type LoadLimits } from './ops/load-protection.js';
import { shutdownBoundMsDefault } from './ops/shutdown.js';
import { dataDirFreeBytesMinDefault } from './ops/health.js';
import path from 'node:path';
import { z } from 'zod';
import { AuthConfigError, authConfigFromEnv, authSettingNames, type AuthConfig } from './auth/auth-config.js';
import { logLevels, type LogLevel } from './log.js';
import { idleCloseMsDefault, openTenantsMaxDefault, slotWaitMsDefault, slotWaitMsMax } from './tenants/registry.js';
import { snapshotEveryMsDefault, snapshotEveryTxDefault } from '../tools/tenant-snapshots.js';
import { tenantRowBytesMaxDefault } from '../storage/store.js';
import { kcLandingRetentionDaysDefault, kcLandingRetentionDaysMax } from '../storage/control/landing-retention.js';

export const httpPortDefault = 8787;
export const httpHostDefault = '127.0.0.1';
export const dataDirDefault = './data';
export const auditRetentionDaysDefault = 2557; // seven years

const blankToUndefined = (value: unknown) => (typeof value === 'string' && value.trim() === '' ? undefined : value);
const optionalString = z.preprocess(blankToUndefined, z.string().trim().optional());
const optionalUrl = z.preprocess(blankToUndefined, z.url().optional());
const optionalPostgresUrl = z.preprocess(
  blankToUndefined,
  z.url({ protocol: /^postgres(ql)?$/, error: 'expected a postgres:// or postgresql:// URL' }).optional(),
);
/** One message for every way a value misses (zod's own for `abc` was "expected number, received NaN"). */
const integerBetween = (min: number, max: number) => {
  const error = `expected an integer from ${min} to ${max}`;
  return z.coerce.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};
const integerIn = (min: number, max: number, fallback: number) => z.preprocess(blankToUndefined, integerBetween(min, max).default(fallback));
const optionalIntegerIn = (min: number, max: number) => z.preprocess(blankToUndefined, integerBetween(min, max).optional());

const commaList = z.preprocess(
  blankToUndefined,
  z
    .string()
    .optional()
    .transform((text) => (text ?? '').split(',').map((item) => item.trim()).filter((item) => item !== '')),
);

/** An entry the Origin header's hostname can equal: what URL makes of it, unchanged (no port, lower case). */
function isBareHostname(entry: string): boolean {
  if (!URL.canParse(`http://${entry}`)) return false;
  return new URL(`http://${entry}`).hostname === entry;
}

const environmentSchema = z
  .object({
    IOBOXX_DATA_DIR: z.preprocess(blankToUndefined, z.string().default(dataDirDefault)),
    IOBOXX_HTTP_HOST: z.preprocess(blankToUndefined, z.string().min(1).default(httpHostDefault)),
    IOBOXX_HTTP_PORT: integerIn(0, 65_535, httpPortDefault),
    IOBOXX_LOG_LEVEL: z.preprocess(blankToUndefined, z.enum(logLevels).default('info')),
    // Each entry as http-server.ts originHostname reads it: `scheme://*`, a bare hostname, or a URL it can parse.
    // A bare entry is compared with the Origin's hostname as is: one with a port, capitals or a
    // space would never match, so it is refused rather than silently refusing every browser.
    IOBOXX_ALLOWED_ORIGINS: commaList.superRefine((origins, context) => {
      for (const origin of origins) {
        if (/^[a-z][a-z0-9+.-]*:\/\/\*$/.test(origin) || (origin.includes('://') ? URL.canParse(origin) : isBareHostname(origin))) continue;
        context.addIssue({ code: 'custom', message: `${JSON.stringify(origin)} is not an origin (https://app.example.com), a hostname (lower case, no port: app.example.com) or scheme://*` });
      }
    }),
    IOBOXX_PUBLIC_URL: optionalUrl,
    // The other OIDC variables (audience, tenant claim, role map, ...) are parsed by
    // server/auth/auth-config.ts, their one owner; its complaints join the list below.
    IOBOXX_OIDC_ISSUER: optionalUrl,
    IOBOXX_TOKEN: optionalString,
    IOBOXX_TENANT: optionalString,
    IOBOXX_MAX_OPEN_TENANTS: integerIn(1, 100_000, openTenantsMaxDefault),
    IOBOXX_TENANT_IDLE_CLOSE_MS: integerIn(1, 7 * 24 * 3_600_000, idleCloseMsDefault),
    IOBOXX_TENANT_SLOT_WAIT_MS: integerIn(1, slotWaitMsMax, slotWaitMsDefault),
    DATABASE_URL: optionalPostgresUrl,
    DATABASE_DIRECT_URL: optionalPostgresUrl,
    S3_ENDPOINT: optionalUrl,
    S3_REGION: optionalString,
    S3_BUCKET: optionalString,
    AWS_ACCESS_KEY_ID: optionalString,
    AWS_SECRET_ACCESS_KEY: optionalString,
    IOBOXX_AUDIT_RETENTION_DAYS: integerIn(1, 36_500, auditRetentionDaysDefault),
    IOBOXX_KC_WEBHOOK_SECRET: optionalString,
    // Landed Keycloak events are deleted this long after they were projected (storage/control/landing-retention.ts).
    IOBOXX_KC_LANDING_RETENTION_DAYS: integerIn(1, kcLandingRetentionDaysMax, kcLandingRetentionDaysDefault),
    // Per-tenant load protection (server/ops/load-protection.ts) and the shutdown bound.
    IOBOXX_TENANT_INFLIGHT_MAX: integerIn(1, loadLimitsCeiling.inFlightMax, loadLimitsDefault.inFlightMax),
    // Default: twice IOBOXX_TENANT_INFLIGHT_MAX (load-protection.ts).
    IOBOXX_TENANT_ALONE_INFLIGHT_MAX: optionalIntegerIn(1, loadLimitsCeiling.aloneInFlightMax),
    IOBOXX_TENANT_QUEUE_MAX: integerIn(0, loadLimitsCeiling.queuedMax, loadLimitsDefault.queuedMax),
    IOBOXX_TENANT_RATE_PER_S: integerIn(1, loadLimitsCeiling.ratePerSecond, loadLimitsDefault.ratePerSecond),
    IOBOXX_TENANT_BURST: integerIn(1, loadLimitsCeiling.burst, loadLimitsDefault.burst),
    IOBOXX_RUNNING_CALLS_MAX: integerIn(1, runningCallsMaxCeiling, runningCallsMaxDefault),
    IOBOXX_SHUTDOWN_MS: integerIn(100, 600_000, shutdownBoundMsDefault),
    // Periodic snapshots of a serving tenant store (tools/tenant-snapshots.ts); 0 turns one off.
    IOBOXX_SNAPSHOT_EVERY_TX: integerIn(0, 1_000_000_000, snapshotEveryTxDefault),
    IOBOXX_SNAPSHOT_EVERY_MS: integerIn(0, 7 * 24 * 3_600_000, snapshotEveryMsDefault),
    // /readyz fails below this much free space on the data directory's filesystem (server/ops/health.ts); 0 turns the floor off.
    IOBOXX_DATA_DIR_FREE_BYTES_MIN: integerIn(0, Number.MAX_SAFE_INTEGER, dataDirFreeBytesMinDefault),
    // A tenant's live row bytes stop growing here (storage/store.ts); a store above it still opens.
    // No 0: its neighbours read 0 as "off", here it would refuse every write.
    IOBOXX_TENANT_ROW_BYTES_MAX: integerIn(1, Number.MAX_SAFE_INTEGER, tenantRowBytesMaxDefault),
    // Budget of the open tenant stores' estimated memory (tenants/registry.ts); default: half the machine's or the cgroup's (tenants/stores-memory-budget.ts).
    IOBOXX_STORES_MEMORY_BYTES_MAX: optionalIntegerIn(1, Number.MAX_SAFE_INTEGER),
  });

/** Every setting's name, as the environment and a configuration file give it. */
export const settingNames: ReadonlySet<string> = new Set([...Object.keys(environmentSchema.shape), ...authSettingNames]);

/** Settings that only make sense together; checked on the raw values so they join every other problem. */
function missingCompanions(env: NodeJS.ProcessEnv): string[] {
  const given = (name: string) => (env[name] ?? '').trim() !== '';
  // The other way round too: a setting whose primary is unset would be ignored without a word
  // (the bucket without S3_ENDPOINT, the migrations' URL without DATABASE_URL, a token in local mode).
  // AWS_* alone are left alone: other AWS tools read them from the same environment.
  const needs: ReadonlyArray<readonly [string, string]> = [
    ['S3_BUCKET', 'S3_ENDPOINT'], ['S3_REGION', 'S3_ENDPOINT'],
    ['DATABASE_DIRECT_URL', 'DATABASE_URL'],
    ['IOBOXX_TOKEN', 'IOBOXX_OIDC_ISSUER'], ['IOBOXX_TENANT', 'IOBOXX_OIDC_ISSUER'],
    // The identity settings too: an audience or role map with the issuer forgotten (or misspelt)
    // would start a local-mode server that checks no token, and a bad value in them went unread.
    ...authSettingNames.map((name) => [name, 'IOBOXX_OIDC_ISSUER'] as const),
  ];
  const orphans = needs
    .filter(([name, primary]) => given(name) && !given(primary))
    .map(([name, primary]) => `${primary}: required when ${name} is set (without it ${name} is ignored)`);
  if (!given('S3_ENDPOINT')) return orphans;
  return ['S3_BUCKET', 'S3_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']
    .filter((name) => !given(name))
    .map((name) => `${name}: required when S3_ENDPOINT is set`);
}

/**
 * A lone tenant's bound is at least the per-tenant one (the load guard refuses it below). Checked on
 * the raw values, as the companions above, so that it joins every other problem at start.
 */
function aloneBelowInFlight(env: NodeJS.ProcessEnv): string[] {
  const integer = (name: string, fallback: number) => {
    const raw = (env[name] ?? '').trim();
    return raw === '' ? fallback : Number(raw);
  };
  const alone = integer('IOBOXX_TENANT_ALONE_INFLIGHT_MAX', Number.NaN);
  const inFlight = integer('IOBOXX_TENANT_INFLIGHT_MAX', loadLimitsDefault.inFlightMax);
  // A value that is no integer is reported by the schema already.
  if (!Number.isInteger(alone) || !Number.isInteger(inFlight) || alone >= inFlight) return [];
  return [`IOBOXX_TENANT_ALONE_INFLIGHT_MAX: ${alone} is below IOBOXX_TENANT_INFLIGHT_MAX (${inFlight}): it must be at least that`];
}

export interface S3Config {
  readonly endpoint: string;
  readonly region: string;
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export interface Config {
  /** 'local' (no issuer: one local tenant, no network) or 'token' (verified Keycloak tokens). */
  readonly mode: 'local' | 'token';
  /** Absolute. */
  readonly dataDir: string;
  readonly http: {
    readonly host: string;
    readonly port: number;
    /** Origins (or hostnames) browsers may call from, besides loopback. */
    readonly allowedOrigins: readonly string[];
    /** This server's public base URL, for Protected Resource Metadata (default: the bound address). */
    readonly publicUrl?: string;
  };
  readonly logLevel: LogLevel;
  /** Token verification settings (server/auth/auth-config.ts); absent in local mode. */
  readonly auth?: AuthConfig;
  /** stdio in token mode: the access token (verified like an HTTP bearer token) ... */
  readonly token?: string;
  /** ... and the tenant it should act for when it names several. */
  readonly tenantSelection?: string;
  readonly maxOpenTenants: number;
  /** An unused tenant store closes after this (tenants/registry.ts). */
  readonly tenantIdleCloseMs: number;
  /** An open that finds no free slot or no room in the stores' memory budget waits this long, then fails busy (tenants/registry.ts). */
  readonly tenantSlotWaitMs: number;
  readonly database: { readonly url?: string; readonly directUrl?: string };
  readonly s3?: S3Config;
  readonly auditRetentionDays: number;
  readonly kcWebhookSecret?: string;
  /** Days a projected Keycloak landing is kept in Postgres. */
  readonly kcLandingRetentionDays: number;
  /** All but aloneInFlightMax are set (that one defaults from inFlightMax in the guard). */
  readonly loadLimits: Partial<LoadLimits>;
  /** Calls running at once over all tenants; freed slots go round robin to tenants waiting. */
  readonly runningCallsMax: number;
  readonly shutdownMs: number;
  /** A tenant store snapshots after this many transactions / this long with changes (0: never by that rule). */
  readonly snapshotEveryTx: number;
  readonly snapshotEveryMs: number;
  /** /readyz answers 503 below this many free bytes on the data directory's filesystem. */
  readonly dataDirFreeBytesMin: number;
  /** A transaction that grows a tenant's live row bytes past this is refused (limit_exceeded). */
  readonly tenantRowBytesMax: number;
  /** Budget of the open stores' estimated memory (HTTP); unset: derived from the machine when serving. */
  readonly storesMemoryBytesMax?: number;
}

export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parse the environment; throws ConfigError naming every bad variable at once. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Config {
  const parsed = environmentSchema.safeParse(env);
  // Never echo values: some of these are secrets.
  const problems = parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`);
  problems.push(...missingCompanions(env), ...aloneBelowInFlight(env));
  let auth: AuthConfig | undefined;
  try {
    auth = authConfigFromEnv(env);
  } catch (error) {
    if (error instanceof AuthConfigError) problems.push(...error.problems);
    else problems.push(error instanceof Error ? error.message : String(error));
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  return {
    mode: auth === undefined ? 'local' : 'token',
    dataDir: path.resolve(cwd, e.IOBOXX_DATA_DIR),
    http: {
      host: e.IOBOXX_HTTP_HOST,
      port: e.IOBOXX_HTTP_PORT,
      allowedOrigins: e.IOBOXX_ALLOWED_ORIGINS,
      ...(e.IOBOXX_PUBLIC_URL !== undefined && { publicUrl: e.IOBOXX_PUBLIC_URL }),
    },
    logLevel: e.IOBOXX_LOG_LEVEL,
    ...(auth !== undefined && { auth }),
    ...(e.IOBOXX_TOKEN !== undefined && { token: e.IOBOXX_TOKEN }),
    ...(e.IOBOXX_TENANT !== undefined && { tenantSelection: e.IOBOXX_TENANT }),
    maxOpenTenants: e.IOBOXX_MAX_OPEN_TENANTS,
    tenantIdleCloseMs: e.IOBOXX_TENANT_IDLE_CLOSE_MS,
    tenantSlotWaitMs: e.IOBOXX_TENANT_SLOT_WAIT_MS,
    database: {
      ...(e.DATABASE_URL !== undefined && { url: e.DATABASE_URL }),
      ...(e.DATABASE_DIRECT_URL !== undefined && { directUrl: e.DATABASE_DIRECT_URL }),
    },
    ...(e.S3_ENDPOINT !== undefined && {
      s3: {
        endpoint: e.S3_ENDPOINT,
        region: e.S3_REGION ?? '',
        bucket: e.S3_BUCKET ?? '',
        accessKeyId: e.AWS_ACCESS_KEY_ID ?? '',
        secretAccessKey: e.AWS_SECRET_ACCESS_KEY ?? '',
      },
    }),
    auditRetentionDays: e.IOBOXX_AUDIT_RETENTION_DAYS,
    kcLandingRetentionDays: e.IOBOXX_KC_LANDING_RETENTION_DAYS,
    ...(e.IOBOXX_KC_WEBHOOK_SECRET !== undefined && { kcWebhookSecret: e.IOBOXX_KC_WEBHOOK_SECRET }),
    loadLimits: {
      inFlightMax: e.IOBOXX_TENANT_INFLIGHT_MAX, queuedMax: e.IOBOXX_TENANT_QUEUE_MAX,
      ...(e.IOBOXX_TENANT_ALONE_INFLIGHT_MAX !== undefined && { aloneInFlightMax: e.IOBOXX_TENANT_ALONE_INFLIGHT_MAX }),
      ratePerSecond: e.IOBOXX_TENANT_RATE_PER_S, burst: e.IOBOXX_TENANT_BURST,
    },
    runningCallsMax: e.IOBOXX_RUNNING_CALLS_MAX,
    shutdownMs: e.IOBOXX_SHUTDOWN_MS,
    snapshotEveryTx: e.IOBOXX_SNAPSHOT_EVERY_TX,
    snapshotEveryMs: e.IOBOXX_SNAPSHOT_EVERY_MS,
    dataDirFreeBytesMin: e.IOBOXX_DATA_DIR_FREE_BYTES_MIN,
    tenantRowBytesMax: e.IOBOXX_TENANT_ROW_BYTES_MAX,
    ...(e.IOBOXX_STORES_MEMORY_BYTES_MAX !== undefined && { storesMemoryBytesMax: e.IOBOXX_STORES_MEMORY_BYTES_MAX }),
  };
}

const redacted = '[redacted]';

/** A URL with its password (and any query string, which may carry keys) hidden. */
function redactUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = redacted;
    if (parsed.search !== '') parsed.search = `?${redacted}`;
    return parsed.toString();
  } catch {
    return redacted;
  }
}

/** The configuration as safe-to-print data: secrets replaced, everything else as parsed. */
export function redactedConfig(config: Config): Record<string, unknown> {
  return {
    ...config,
    ...(config.auth !== undefined && {
      auth: { ...config.auth, roleMap: Object.fromEntries([...config.auth.roleMap].map(([role, granted]) => [role, [...granted]])) },
    }),
    ...(config.token !== undefined && { token: redacted }),
    ...(config.kcWebhookSecret !== undefined && { kcWebhookSecret: redacted }),
    database: { url: redactUrl(config.database.url), directUrl: redactUrl(config.database.directUrl) },
    ...(config.s3 !== undefined && { s3: { ...config.s3, accessKeyId: redacted, secretAccessKey: redacted } }),
  };
}
