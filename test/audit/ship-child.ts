/**
 * Shipper child for the SIGKILL test: ships tenant argv[4] from the control plane at argv[2] to
 * bucket argv[3] in batches of 3, with a short lease, until nothing is left (waiting out a lease a
 * killed shipper left); prints `uploaded N` / `confirmed N` per batch and `done` at the end. With
 * argv[5] = `pause`, it waits 300 ms between a batch's upload and its confirmation.
 */
import { openControlPlane } from '../../storage/control/control-plane.js';
import { openAuditBucket } from '../../storage/audit/audit-bucket.js';
import { shipAudit } from '../../storage/audit/shipper.js';
import { s3Service } from '../support/services.js';

const [databaseUrl, bucketName, tenant, mode] = process.argv.slice(2) as [string, string, string, string | undefined];
const s3 = s3Service();
const bucket = openAuditBucket({ endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, bucket: bucketName });
const control = await openControlPlane({ databaseUrl });
for (;;) {
  const result = await shipAudit(control, bucket, {
    tenant, retentionDays: 1, batchEventsMax: 3, force: true, leaseMs: 1_000,
    onUploaded: async (b) => {
      process.stdout.write(`uploaded ${b.batchSeq}\n`);
      if (mode === 'pause') await new Promise((resolve) => setTimeout(resolve, 300));
    },
    onConfirmed: (b) => void process.stdout.write(`confirmed ${b.batchSeq}\n`),
  });
  if (result.failedTenants.length > 0) throw new Error(JSON.stringify(result.failedTenants));
  const left = (await control.stagedAudit(tenant, { limit: 1 })).length + (await control.pendingAuditTenants()).length;
  if (result.busyTenants.length === 0 && left === 0) break;
  await new Promise((resolve) => setTimeout(resolve, 100));
}
process.stdout.write('done\n');
await control.close();
