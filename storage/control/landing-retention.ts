/**
 * Retention of landed Keycloak events (kc_event_landing). A landing is needed until it is
 * projected (applied to every tenant it reaches, or refused there for good, and marked); after
 * that it serves only as the dedup key of a redelivery and as history replayed to a tenant the
 * user joins later (keycloak-projector.ts). Past the retention it is deleted: the table's size
 * follows the event rate times the retention, not the age of the realm.
 *
 * What deleting costs: a redelivery of a deleted landing's event lands again and is applied again,
 * a no-op in every tenant (the projection keeps the newest change per thing by event time:
 * tools/kc-clock.ts); a tenant a user joins gets none of the user's events older than the
 * retention.
 *
 * The row of an organization Keycloak deleted (kc_organizations, marked when its ORGANIZATION-DELETE
 * is projected) is kept as long, then deleted the same way: until then a landing naming the
 * organization only by id (a late one, or one still pending) still reaches the tenant named by
 * its alias. The table's size follows the organizations living, and those deleted within the retention,
 * together at most kcOrganizationsMax a realm (keycloak-organizations.ts).
 */
import { MemoryError } from '../errors.js';
import type { ControlPlane } from './control-plane.js';

/** Days a projected landing is kept (IOBOXX_KC_LANDING_RETENTION_DAYS). */
export const kcLandingRetentionDaysDefault = 365;
export const kcLandingRetentionDaysMax = 36_500;
/** Landings one statement deletes at most: each is a short transaction, never one huge delete. */
export const landingPruneChunkRowsMax = 1_000;
/** Statements one prune runs at most; what is left waits for the next prune. */
export const landingPruneChunksMax = 50;
/** A prune runs at most this often (the projector passes run every few seconds). */
export const landingPruneEveryMsDefault = 60_000;

export const dayMs = 24 * 3_600_000;

export interface LandingPrune {
  readonly deleted: number;
  /** The prune stopped at landingPruneChunksMax: more are due. */
  readonly more: boolean;
}

export interface PruneChunks {
  readonly rowsMax?: number;
  readonly chunksMax?: number;
}

/** Deletes landings projected more than `retentionMs` ago, oldest first, chunk by chunk. */
export function pruneProjectedLandings(control: ControlPlane, retentionMs: number, chunk: PruneChunks = {}): Promise<LandingPrune> {
  return pruneInChunks('landings', retentionMs, chunk, (rowsMax) => control.deleteProjectedKeycloakLandings(retentionMs, rowsMax));
}

/** Deletes the rows of organizations marked deleted more than `retentionMs` ago, oldest first, chunk by chunk. */
export function pruneDeletedOrganizations(control: ControlPlane, retentionMs: number, chunk: PruneChunks = {}): Promise<LandingPrune> {
  return pruneInChunks('organizations', retentionMs, chunk, (rowsMax) => control.deleteForgottenOrganizations(retentionMs, rowsMax));
}

async function pruneInChunks(what: string, retentionMs: number, chunk: PruneChunks, deleteChunk: (rowsMax: number) => Promise<number>): Promise<LandingPrune> {
  const rowsMax = chunk.rowsMax ?? landingPruneChunkRowsMax;
  const chunksMax = chunk.chunksMax ?? landingPruneChunksMax;
  if (!Number.isSafeInteger(retentionMs) || retentionMs < 0) {
    throw new MemoryError('invalid_argument', `Keycloak landing retention must be a whole number of ms >= 0 (got ${retentionMs})`);
  }
  let deleted = 0;
  for (let chunks = 0; chunks < chunksMax; chunks++) {
    const gone = await deleteChunk(rowsMax);
    if (gone > rowsMax) throw new Error(`a chunk of at most ${rowsMax} ${what} deleted ${gone}`);
    deleted += gone;
    if (gone < rowsMax) return { deleted, more: false };
  }
  return { deleted, more: true };
}
