/**
 * The bounds of a tenant's Keycloak projection. A tenant is one Keycloak organization: these are
 * far above a real organization's users, memberships and grants, and they hold a tenant that a
 * runaway sender (or a realm-wide mistake) floods at a size the operator can plan for.
 *
 *  - kc_users, kc_memberships, kc_role_grants: an event that would add a row past its bound is
 *    refused, whole (the projector marks it in kc_event_landing.projection_error and logs it);
 *    changes to rows already there go on, and a deletion frees room.
 *  - kc_versions: one stamp per user row and profile field and per membership and grant
 *    (kc-clock.ts), so its bound follows from theirs; past it an event is refused the same way.
 *  - kc_deletions: the newest kcDeletionsMax, none older than kcDeletionAgeMsMax; past either the
 *    oldest are forgotten and the tenant's horizon rises to them (kc-clock.ts).
 *  - kc_landings: the landings applied, kept so that a landing applied again (a crash between
 *    applying and marking it projected) is a no-op with its first effect. The projector marks a
 *    landing right after applying it, so only the newest matter: past kcLandingsKeptMax the oldest
 *    are forgotten. One applied again after that is still a no-op (each thing keeps its newest
 *    change by event time), only reported as ignored.
 * The tables carry the same bounds as rowsMax, the engine's own check behind this one.
 */
import { MemoryError } from '../storage/errors.js';
import type { TableWriter } from '../storage/reducer.js';
import type { Value } from '../storage/schema.js';

/**
 * Deletion records a tenant keeps. A deletion older than the newest kcDeletionsMax is forgotten;
 * an event at or before it is refused from then on (see kcHorizonTable in kc-clock.ts).
 */
export const kcDeletionsMax = 100_000;
/**
 * A deletion record is forgotten this long after its event (the same way): it names a deleted
 * user, kept no longer than a landed event is by default (IOBOXX_KC_LANDING_RETENTION_DAYS).
 */
export const kcDeletionAgeMsMax = 365 * 24 * 3_600_000;
/** Deletions one event forgets for their age at most: a backlog goes event by event. */
export const kcDeletionsAgedOutPerEventMax = 64;
export const kcUsersMax = 500_000;
export const kcMembershipsMax = 1_000_000;
export const kcRoleGrantsMax = 2_000_000;
/** A user's row and its six profile fields, each membership, each grant: one stamp each. */
export const kcVersionsMax = 7 * kcUsersMax + kcMembershipsMax + kcRoleGrantsMax;
export const kcLandingsKeptMax = 10_000;
/** Landings one event forgets at most: a store above the bound (written before it) shrinks event by event, never in one huge delete. */
export const kcLandingsForgottenPerEventMax = 64;

export interface KcBounds {
  readonly deletionsMax: number;
  readonly deletionAgeMsMax: number;
  readonly usersMax: number;
  readonly membershipsMax: number;
  readonly roleGrantsMax: number;
  readonly versionsMax: number;
  readonly landingsKeptMax: number;
}

export const kcBoundsDefault: KcBounds = {
  deletionsMax: kcDeletionsMax, deletionAgeMsMax: kcDeletionAgeMsMax, usersMax: kcUsersMax, membershipsMax: kcMembershipsMax, roleGrantsMax: kcRoleGrantsMax, versionsMax: kcVersionsMax, landingsKeptMax: kcLandingsKeptMax,
};

/** The bound of each bounded table, and the name an operator finds it under. */
const boundOf: Record<string, { readonly field: keyof KcBounds; readonly name: string }> = {
  kc_users: { field: 'usersMax', name: 'kcUsersMax' },
  kc_memberships: { field: 'membershipsMax', name: 'kcMembershipsMax' },
  kc_role_grants: { field: 'roleGrantsMax', name: 'kcRoleGrantsMax' },
  kc_versions: { field: 'versionsMax', name: 'kcVersionsMax' },
};

/**
 * Refuses a new row under `key` in `table` when the table is at its bound (a row already there
 * may change). The refusal is for good: the projector marks the event and goes on.
 */
export function assertRoomFor(table: TableWriter, key: readonly Value[], bounds: KcBounds): void {
  const bound = boundOf[table.schema.name];
  if (bound === undefined) throw new Error(`${table.schema.name} is not a bounded kc_* table`);
  const rowsMax = bounds[bound.field];
  if (table.size < rowsMax || table.get(key) !== undefined) return;
  throw new MemoryError(
    'limit_exceeded',
    `Keycloak event not applied: this tenant's ${table.schema.name} holds its maximum of ${rowsMax} rows (${bound.name})`,
    'the event is marked in kc_event_landing.projection_error; delete users, memberships or grants this organization no longer needs in Keycloak, then make the change again there (a new event)',
  );
}
