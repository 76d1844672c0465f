/**
 * The audit bucket: its S3 client (path-style, so a loopback Ceph RGW or MinIO works as AWS
 * does) and the Object Lock check made before anything is shipped to it.
 */
import { GetObjectLockConfigurationCommand, S3Client } from '@aws-sdk/client-s3';
import { MemoryError } from '../errors.js';

export interface AuditS3Config {
  /** Unset: AWS's own endpoint for the region. */
  readonly endpoint?: string;
  readonly region: string;
  readonly bucket: string;
  /** Unset: the SDK's default credential chain. */
  readonly accessKeyId?: string;
  readonly secretAccessKey?: string;
}

/** How many tries one request gets before the shipper gives up until its next pass. */
export const s3AttemptsMax = 3;
export const s3RequestTimeoutMs = 15_000;
export const s3ConnectTimeoutMs = 3_000;

/** Reads S3_ENDPOINT, S3_REGION, S3_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; undefined when no bucket is set. */
export function auditS3ConfigFromEnv(env: NodeJS.ProcessEnv): AuditS3Config | undefined {
  if (!env.S3_BUCKET) return undefined;
  return {
    ...(env.S3_ENDPOINT ? { endpoint: env.S3_ENDPOINT } : {}),
    region: env.S3_REGION || 'us-east-1',
    bucket: env.S3_BUCKET,
    ...(env.AWS_ACCESS_KEY_ID ? { accessKeyId: env.AWS_ACCESS_KEY_ID } : {}),
    ...(env.AWS_SECRET_ACCESS_KEY ? { secretAccessKey: env.AWS_SECRET_ACCESS_KEY } : {}),
  };
}

export interface AuditBucket {
  readonly client: S3Client;
  readonly bucket: string;
  /**
   * The client audit batches are uploaded with: the same, but the SDK never sends a request of it
   * twice. A PUT retried after its answer was lost (stored, then the connection reset) writes a
   * second version of the key that COMPLIANCE keeps for good; the shipper looks before it tries
   * again (shipper.ts). Unset: `client`.
   */
  readonly uploadClient?: S3Client;
}

export function openAuditBucket(config: AuditS3Config): AuditBucket {
  return { client: s3Client(config, s3AttemptsMax), uploadClient: s3Client(config, 1), bucket: config.bucket };
}

function s3Client(config: AuditS3Config, maxAttempts: number): S3Client {
  return new S3Client({
    region: config.region,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    forcePathStyle: true,
    ...(config.accessKeyId && config.secretAccessKey
      ? { credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey } }
      : {}),
    maxAttempts,
    // Checksums are sent explicitly (Content-MD5 and SHA-256) on each PutObject; the SDK's
    // streaming trailer checksums are not understood by every S3-compatible gateway.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { connectionTimeout: s3ConnectTimeoutMs, requestTimeout: s3RequestTimeoutMs },
  });
}

/** Refuses a bucket without Object Lock enabled: batches there could be deleted or rewritten. */
export async function assertObjectLockEnabled(bucket: AuditBucket): Promise<void> {
  let enabled: string | undefined;
  try {
    const result = await bucket.client.send(new GetObjectLockConfigurationCommand({ Bucket: bucket.bucket }));
    enabled = result.ObjectLockConfiguration?.ObjectLockEnabled;
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name !== 'ObjectLockConfigurationNotFoundError') throw error;
  }
  if (enabled !== 'Enabled') {
    throw new MemoryError(
      'forbidden',
      `audit bucket ${bucket.bucket} does not have Object Lock enabled: refusing to ship audit batches to it`,
      'create the bucket with Object Lock enabled (CreateBucket ObjectLockEnabledForBucket=true)',
    );
  }
}
