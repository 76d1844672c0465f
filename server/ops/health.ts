/**
 * GET /healthz: the process is alive and its event loop answers (no dependency is touched, so a
 * Postgres outage never gets a healthy server restarted).
 * GET /readyz: the server can do its work now: every readiness probe (stores' data directory,
 * Postgres, S3 when configured) answered within `probeTimeoutMs`, and it is not shutting down.
 * 503 names the probe that failed. Bodies carry probe names, times and short error texts only.
 */
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { Router } from 'express';
import type { AuditBucket } from '../../storage/audit/audit-bucket.js';

export const probeTimeoutMsDefault = 2_000;
/** Error texts in /readyz are cut to this: enough to act on, never a dump. */
export const probeErrorCharsMax = 200;

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
  router.get('/readyz', (_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    if (options.draining?.() === true) {
      res.status(503).json({ status: 'draining', checks: [] });
      return;
    }
    runProbes(options.probes, options.probeTimeoutMs).then((checks) => {
      const ready = checks.every((c) => c.ok);
      res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
    }, next);
  });
  return router;
}

// ---------------------------------------------------------------- probes for this server's parts

/** The data directory exists and is writable (tenant stores are opened and created there). */
export function dataDirProbe(dataDir: string): ReadinessProbe {
  return { name: 'stores', check: () => access(dataDir, fsConstants.R_OK | fsConstants.W_OK) };
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
