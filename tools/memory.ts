/**
 * A tenant's memory as the tools see it: the tenant's store plus the structures derived
 * from it (vector index). Built by `openTenantMemory` (tools helper owns the body).
 */
import type { StoreApi } from '../storage/store.js';

export interface TenantMemory {
  readonly tenant: string;
  readonly store: StoreApi;
  close(): Promise<void>;
}
