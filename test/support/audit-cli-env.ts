/** A fresh Object Lock bucket on the test S3 gateway and the environment `audit ship|verify` read to reach it and `databaseUrl`. */
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { openAuditBucket, type AuditBucket } from '../../storage/audit/audit-bucket.js';
import { s3Service } from './services.js';

export async function auditCliEnv(databaseUrl: string, label: string): Promise<{ bucket: AuditBucket; env: Record<string, string> }> {
  const s3 = s3Service();
  const config = { endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
  const name = `ioboxx-${label}-${process.pid}-${Math.floor(Math.random() * 1e9)}`;
  const bucket = openAuditBucket({ ...config, bucket: name });
  await bucket.client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: true }));
  const env = {
    DATABASE_URL: databaseUrl,
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    S3_BUCKET: name,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    IOBOXX_AUDIT_RETENTION_DAYS: '1',
  };
  return { bucket, env };
}
