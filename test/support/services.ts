/**
 * The real services that scripts/services/up.sh started: read from the env file it writes
 * (IOBOXX_SERVICES_ENV, default /tmp/ioboxx-services.env), with process env winning. A test
 * that needs a service which is not there fails with the command to run: it never skips.
 */
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const servicesEnvFileDefault = '/tmp/ioboxx-services.env';
export const servicesScriptsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'services');

const upHint = 'run scripts/services/up.sh (it starts Postgres, PgBouncer and the Ceph RADOS Gateway on loopback)';

function servicesEnv(): Record<string, string> {
  const file = process.env.IOBOXX_SERVICES_ENV ?? servicesEnvFileDefault;
  const fromFile: Record<string, string> = {};
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (match) fromFile[match[1]!] = match[2]!;
    }
  } catch {
    // No file: the variables may still come from the environment.
  }
  const merged: Record<string, string> = { ...fromFile };
  for (const [k, v] of Object.entries(process.env)) if (k.startsWith('IOBOXX_TEST_') && v) merged[k] = v;
  return merged;
}

function required(env: Record<string, string>, name: string, service: string): string {
  const value = env[name];
  if (!value) throw new Error(`${service} is not available (${name} unset): ${upHint}`);
  return value;
}

export interface PostgresService {
  readonly url: string;
}

export interface S3Service {
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Directory of the services (the Ceph cluster and its pid files live under it). */
  readonly servicesDir: string;
}

/** The test Postgres; throws (failing the test) with the command to run when absent. */
export function postgresService(): PostgresService {
  const env = servicesEnv();
  return { url: required(env, 'IOBOXX_TEST_DATABASE_URL', 'Postgres') };
}

/**
 * PgBouncer in transaction mode in front of the test Postgres (scripts/services/pgbouncer.sh):
 * every database name passes through. Throws, with the command to run, when absent.
 */
export function poolerService(): PostgresService {
  const env = servicesEnv();
  return { url: required(env, 'IOBOXX_TEST_POOLER_URL', 'PgBouncer') };
}

/** Runs `fn` on the admin console (`show ...`; simple query protocol only) of PgBouncer at `poolerUrl` (default: the test one). */
export async function poolerAdmin<T>(fn: (admin: import('pg').Client) => Promise<T>, poolerUrl: string = poolerService().url): Promise<T> {
  const { default: pg } = await import('pg');
  const url = new URL(poolerUrl);
  url.username = 'postgres';
  url.pathname = '/pgbouncer';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}

export function s3Service(): S3Service {
  const env = servicesEnv();
  return {
    endpoint: required(env, 'IOBOXX_TEST_S3_ENDPOINT', 'The S3 gateway'),
    region: env.IOBOXX_TEST_S3_REGION ?? 'us-east-1',
    accessKeyId: required(env, 'IOBOXX_TEST_S3_ACCESS_KEY_ID', 'The S3 gateway'),
    secretAccessKey: required(env, 'IOBOXX_TEST_S3_SECRET_ACCESS_KEY', 'The S3 gateway'),
    servicesDir: env.IOBOXX_TEST_SERVICES_DIR ?? '/tmp/ioboxx-services',
  };
}

/** A port free at this moment on 127.0.0.1 (for daemons that take a port number, not 0). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Runs one of scripts/services/*.sh; resolves with stdout, rejects with stderr on failure. */
export async function runServiceScript(script: string, args: readonly string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(servicesScriptsDir, script), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${script} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
    });
  });
}

/** A Postgres cluster of one test's own (scripts/services/postgres.sh): it may stop it, the shared one is never disturbed. */
export interface OwnPostgres {
  /** A scratch directory of the test's (the cluster lives in its `services/`). */
  readonly dir: string;
  readonly databaseUrl: string;
  down(): Promise<void>;
  up(): Promise<void>;
  /** Stops the cluster and removes `dir`. */
  purge(): Promise<void>;
}

export async function startOwnPostgres(label: string): Promise<OwnPostgres> {
  const dir = await mkdtemp(join(tmpdir(), `ioboxx-${label}-`));
  await chmod(dir, 0o755); // the cluster runs as the `postgres` user, which must reach its directory
  const env = { IOBOXX_SERVICES_DIR: join(dir, 'services'), IOBOXX_PG_PORT: String(await freePort()) };
  const lines = await runServiceScript('postgres.sh', ['up'], env);
  return {
    dir,
    databaseUrl: /^IOBOXX_TEST_DATABASE_URL=(.*)$/m.exec(lines)![1]!,
    down: async () => void (await runServiceScript('postgres.sh', ['down'], env)),
    up: async () => void (await runServiceScript('postgres.sh', ['up'], env)),
    purge: async () => {
      await runServiceScript('postgres.sh', ['purge'], env).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface FreshDatabase {
  /** Straight to Postgres. */
  readonly url: string;
  /** The same database through PgBouncer (transaction pooling); throws when PgBouncer is not up. */
  pooledUrl(): string;
  drop(): Promise<void>;
}

/** A fresh empty database on the test Postgres, so suites running in parallel never share tables. */
export async function freshPostgresDatabase(label: string): Promise<FreshDatabase> {
  const { default: pg } = await import('pg');
  const base = postgresService().url;
  const name = `t_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    pooledUrl() {
      const pooled = new URL(poolerService().url);
      pooled.pathname = `/${name}`;
      return pooled.toString();
    },
    async drop() {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
