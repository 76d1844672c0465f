/** What `audit verify` names: one problem of the trail, found in the bucket, in staging or against a tenant's store. */
export type AuditProblemKind =
  | 'missing_batch' // a batch number absent from the bucket (or recorded in Postgres but absent)
  | 'gap' // sequences between two batches not contiguous, or a hole in what is staged to ship
  | 'chain_break' // prevSha256 not the previous batch's hash
  | 'altered' // bytes not hashing to the recorded / stated SHA-256, or an event differing from the store's row
  | 'extra_version' // a key holding more than its one shipped version
  | 'delete_marker' // a delete marker hiding a batch
  | 'bad_batch' // a batch inconsistent in itself (count, sequences, format)
  | 'not_locked' // a batch version without COMPLIANCE retention
  | 'short_retention' // a batch retained for less than the configured retention from when it was written
  | 'unexpected_object' // an object under the audit prefix that is no batch, or a batch the control plane never shipped
  | 'missing_event' // an access-log row of a tenant's store that is neither in S3 nor staged, and should be
  | 'mark_behind' // the control plane's staged mark below what S3 and staging already hold of that source
  | 'store_behind' // the trail holds access-log rows a closed store never reached (a restarted store no stager has seen yet)
  | 'store_unreadable' // a tenant's store that could not be opened read-only: its rows are unchecked
  | 'store_vanished'; // a known tenant's store gone from the data directory: its rows not yet staged are in no trail

export interface AuditProblem {
  readonly kind: AuditProblemKind;
  readonly tenant: string;
  readonly key?: string;
  readonly versionId?: string;
  readonly batchSeq?: number;
  readonly detail: string;
}

const tamperedBucket =
  'the bucket holds what the shipper did not write as it wrote it: keep the bucket as it is (COMPLIANCE keeps every version anyway) and find the writer in the bucket\'s access log (S3 server access logging, CloudTrail) by key and version; a second server with its own database on this bucket, or a control plane restored from an older backup, writes batches like these';

/** What an operator does about each kind of problem: `audit verify` prints it under the problems. */
export const auditProblemHints: Readonly<Record<AuditProblemKind, string>> = {
  missing_batch: 'a COMPLIANCE version cannot be deleted before its retain-until date: check the bucket\'s versioning and Object Lock settings and IOBOXX_AUDIT_RETENTION_DAYS, and find who deleted it in the bucket\'s access log; its events are lost to the chain (the store cross-check names those still in a store)',
  gap: 'events were removed from Postgres staging (or a batch shipped without them): the tenant\'s shipping stops at a staging hole; restore the control plane database from a backup holding them, or record them as lost (`audit close-gap --tenant T`), and compare with the tenant\'s store (verify without --no-stores)',
  chain_break: tamperedBucket,
  altered: `an event differing from a tenant store's row was rewritten in Postgres before it shipped (or the store was); else ${tamperedBucket}`,
  extra_version: tamperedBucket,
  delete_marker: 'a delete marker hides the batch but cannot remove a COMPLIANCE version: find who deleted it in the bucket\'s access log; the batch is still there under its version id',
  bad_batch: tamperedBucket,
  not_locked: 'the batch can be deleted or overwritten: ship only to a bucket created with Object Lock (audit ship refuses others), and find who wrote this version',
  unexpected_object: tamperedBucket,
  short_retention: 'a shipper ran with a shorter IOBOXX_AUDIT_RETENTION_DAYS than this verify (or wrote with a clock far off): these batches can be deleted early. Find which server and when (the dates named), set its retention right; a COMPLIANCE retention can be extended (PutObjectRetention with a later date), never shortened',
  missing_event: 'an access-log row of the store never reached the trail (the row itself is still in the store: keep a `backup` of it): if Postgres was restored or edited, restore it from a backup holding the events; else find why the server did not stage it (its log: `access log`, `audit`)',
  mark_behind: 'the control plane\'s staged mark went backwards (Postgres restored from an older backup or edited): restore it from its newest backup; until then rows after the mark may be staged twice or not at all',
  store_behind: 'an older copy of the store is in place: serve the tenant so the stager opens the next generation of its access log, then verify again',
  store_unreadable: 'fix what the store\'s own error names (`store verify DIR` says more), then verify again',
  store_vanished: 'restore the tenant\'s newest backup (`restore`), or, if it is gone on purpose, `tenants forget` it',
};
