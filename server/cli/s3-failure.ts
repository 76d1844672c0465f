/**
 * An S3 failure as an operator command says it. The SDK leaves two kinds unexplained: a request
 * S3 refused with no name it knows (a missing bucket, a wrong secret: `UnknownError`), and an
 * endpoint that cannot be reached at all (`connect ECONNREFUSED 127.0.0.1:9`, with no word of S3).
 * Both become `unavailable` naming the bucket or endpoint and what to check; any other error is
 * returned as it is.
 */
import type { S3Config } from '../config.js';
import { MemoryError } from '../../storage/errors.js';

/** Network errors that mean the endpoint was never answered. */
const unreachableCodes = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET']);

export function explainS3Failure(error: unknown, s3: S3Config | undefined): unknown {
  if (s3 === undefined || error === null || typeof error !== 'object') return error;
  const e = error as Error & { code?: unknown; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined) {
    return new MemoryError('unavailable', `S3 refused the request for bucket ${s3.bucket} at ${s3.endpoint}: ${e.name} (HTTP ${status})${e.message && e.message !== e.name ? `: ${e.message}` : ''}`,
      'check that the bucket exists with Object Lock enabled, and S3_ENDPOINT, S3_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  }
  if (typeof e.code === 'string' && unreachableCodes.has(e.code) && atEndpoint(error, s3.endpoint)) {
    return new MemoryError('unavailable', `S3 at ${s3.endpoint} could not be reached: ${e.message}`, 'check S3_ENDPOINT, and that the S3 service runs and this host reaches it');
  }
  return error;
}

/**
 * Whether a socket error names the S3 endpoint's port (or no port at all): one naming another port
 * came from another connection (the control plane's Postgres, in the audit commands) and is not
 * S3's to explain.
 */
function atEndpoint(error: object, endpoint: string): boolean {
  const port = (error as { port?: unknown }).port;
  if (typeof port !== 'number') return true;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return true;
  }
  return port === Number(url.port || (url.protocol === 'https:' ? 443 : 80));
}
