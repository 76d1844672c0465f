/**
 * GET /healthz: the process is alive and its event loop answers (no dependency is touched, so a
 * Postgres outage never gets a healthy server restarted).
 * GET /readyz: the server can do its work now: every readiness probe (stores' data directory
 * writable with at least `dataDirFreeBytesMin` free, Postgres, S3 when configured) answered
 * within `probeTimeoutMs`, and it is not shutting down. 503 names the probe that failed. Tenants
 * in trouble (degraded-tenants.ts) are listed in the body, bounded, and leave the status as it is:
 * one tenant's failed store must not take every other tenant out of the load balancer. Bodies
 * carry probe names, times, short error texts and those tenants' states; their ids only to a
 * caller on this machine (an operator's curl or port-forward), never to a balancer or the network.
 */
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { Router } from 'express';
import type { AuditBucket } from '../../storage/audit/audit-bucket.js';
import { statfsFreeBytes, type FreeBytesOf } from '../../storage/io/free-bytes.js';
import type { DegradedTenant, DegradedTenantsReport } from './degraded-tenants.js';
import { forwardedBy, isLoopbackAddress } from '../http/loopback.js';

export const probeTimeoutMsDefault = 2_000;
/** Error texts in /readyz are cut to this: enough to act on, never a dump. */
export const probeErrorCharsMax = 200;
/**
 * Below this much free space on the data directory's filesystem the server is not ready: writes,
 * snapshots and opens would fail on it anyway (IOBOXX_DATA_DIR_FREE_BYTES_MIN).
 */
export const dataDirFreeBytesMinDefault = 64 * 1024 * 1024;

export interface ReadinessProbe {
  readonly name: string;
  /** Resolves when ready; throws (or rejects) with the reason when not. */
  readonly check: () => Promise<void>;
}

export interface HealthOptions {
  readonly probes: readonly ReadinessProbe[];
  readonly probeTimeoutMs?: number;
  /** True once shutdown began: /readyz answers 503 so balancers stop sending work. */
  readonly draining?: () => boolean;
  /** Tenants in trouble, listed in every /readyz body (they do not change its status). */
  readonly degradedTenants?: () => DegradedTenantsReport;
}

export interface ProbeResult {
  readonly name: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly error?: string;
}

export async function runProbes(probes: readonly ReadinessProbe[], timeoutMs = probeTimeoutMsDefault): Promise<ProbeResult[]> {
  return Promise.all(probes.map(async (probe) => {
    const startMs = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        probe.check(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return { name: probe.name, ok: true, ms: Math.round(performance.now() - startMs) };
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      return { name: probe.name, ok: false, ms: Math.round(performance.now() - startMs), error: text.slice(0, probeErrorCharsMax) };
    } finally {
      clearTimeout(timer);
    }
  }));
}

export function healthRouter(options: HealthOptions): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.json({ status: 'alive' });
  });
  router.get('/readyz', (req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    if (options.draining?.() === true) {
      res.status(503).json({ status: 'draining', checks: [] });
      return;
    }
    runProbes(options.probes, options.probeTimeoutMs).then((checks) => {
      const ready = checks.every((c) => c.ok);
      const report = options.degradedTenants?.();
      // Tenant ids name customers: a probe from elsewhere (a balancer) gets states and codes only.
      const local = isLoopbackAddress(req.socket.remoteAddress) && forwardedBy(req.headers) === undefined;
      const degradedTenants = report === undefined || local ? report : withoutTenantIds(report);
      res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks, ...(degradedTenants && { degradedTenants }) });
    }, next);
  });
  return router;
}

function withoutTenantIds(report: DegradedTenantsReport): { readonly count: number; readonly listed: readonly Omit<DegradedTenant, 'tenant'>[] } {
  return { count: report.count, listed: report.listed.map(({ tenant: _tenant, ...rest }) => rest) };
}

// ---------------------------------------------------------------- probes for this server's parts

export interface DataDirProbeOptions {
  readonly freeBytesMin?: number;
  readonly freeBytesOf?: FreeBytesOf;
}

/** The data directory exists, is writable (tenant stores are opened and created there) and its filesystem has at least `freeBytesMin` free. */
export function dataDirProbe(dataDir: string, options: DataDirProbeOptions = {}): ReadinessProbe {
  const freeBytesMin = options.freeBytesMin ?? dataDirFreeBytesMinDefault;
  const freeBytesOf = options.freeBytesOf ?? statfsFreeBytes;
  return {
    name: 'stores',
    check: async () => {
      await access(dataDir, fsConstants.R_OK | fsConstants.W_OK);
      const freeBytes = await freeBytesOf(dataDir);
      if (freeBytes < freeBytesMin) {
        throw new Error(`${freeBytes} bytes free on the data directory's filesystem, below the floor of ${freeBytesMin} (IOBOXX_DATA_DIR_FREE_BYTES_MIN): free space`);
      }
    },
  };
}

/** Postgres answers a trivial query; `query` is the control plane's own pool or client. */
export function postgresProbe(query: (sql: string) => Promise<unknown>): ReadinessProbe {
  return { name: 'postgres', check: async () => void (await query('select 1')) };
}

/** The audit bucket answers HeadBucket with these credentials. */
export function s3Probe(bucket: AuditBucket): ReadinessProbe {
  return {
    name: 's3',
    check: async () => {
      try {
        await bucket.client.send(new HeadBucketCommand({ Bucket: bucket.bucket }));
      } catch (error) {
        // A HEAD answer has no body: the SDK's error is then only "UnknownError"; the status says what is wrong.
        const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === undefined) throw error;
        throw new Error(`HeadBucket ${bucket.bucket}: HTTP ${status}${status === 404 ? ' (no such bucket)' : status === 403 ? ' (access denied)' : ''}`);
      }
    },
  };
}
