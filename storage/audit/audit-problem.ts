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
