/**
 * Keycloak projections: kc_users, kc_memberships (groups, organizations) and
 * kc_role_grants, applied from landed Keycloak events by the system reducer
 * `kc_apply_event`. The landing id is recorded in kc_landings in the same transaction, so
 * re-applying a landing is a no-op (exactly once, across restarts). Events this projection
 * does not use (LOGIN, ...) or cannot read are recorded as ignored, never retried forever.
 * The projection does not depend on the order events arrive in: each user, profile field,
 * membership and role grant takes the change of its newest event by Keycloak time, and
 * deletions are remembered (kc-clock.ts), so the state is the one of applying the events in
 * time order. The *_at_ms columns are the times of those events.
 *
 * Shapes understood: stock user events {type, userId, details, time} (types may carry the
 * webhook extension's `access.` prefix) and admin events {operationType, resourceType,
 * resourcePath, representation (a JSON string)}, or the extension's `admin.RESOURCE-OP` type.
 */
import { z } from 'zod';
import { subjectUserOfEvent } from '../storage/control/keycloak-event.js';
import { MemoryError } from '../storage/errors.js';
import { isJsonObject } from '../storage/json-object.js';
import { defineReducer, type ReducerContext, type TableReader, type TableWriter } from '../storage/reducer.js';
import type { Row, TableSchema } from '../storage/schema.js';
import { cursorScope, decodeCursorAs, nextCursorField } from './cursor.js';
import { readTool } from './define-tool.js';
import { collectPage, pageCursor, pageItemsBytesMax, pageLimit, type CollectedPage } from './result-page.js';
import type { ToolDef } from './tool.js';
import { jsonObject } from './wire-schema.js';
import { patterned } from './identifiers.js';
import { describeStamp, eventStamp, KcClock, kcClockTables, newer, stampOfRow, userThing, type EventStamp, type KcThing } from './kc-clock.js';
import { assertRoomFor, kcBoundsDefault, kcLandingsForgottenPerEventMax, kcMembershipsMax, kcRoleGrantsMax, kcUsersMax, type KcBounds } from './kc-bounds.js';

export const kcIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;
export const representationCharsMax = 64 * 1024;
export const rolesPerEventMax = 256;
const kcFieldCharsMax = 512;

export const kcUsersTable: TableSchema = {
  name: 'kc_users',
  columns: [
    { name: 'user_id', type: 'string' },
    { name: 'username', type: 'string' },
    { name: 'email', type: 'string', nullable: true },
    { name: 'first_name', type: 'string', nullable: true },
    { name: 'last_name', type: 'string', nullable: true },
    { name: 'enabled', type: 'bool' },
    { name: 'email_verified', type: 'bool' },
    { name: 'updated_at_ms', type: 'int' },
  ],
  primaryKey: ['user_id'],
  rowsMax: kcUsersMax,
};

export const kcMembershipsTable: TableSchema = {
  name: 'kc_memberships',
  columns: [
    { name: 'user_id', type: 'string' },
    { name: 'kind', type: 'string' }, // group | organization
    { name: 'scope_id', type: 'string' },
    { name: 'scope_name', type: 'string', nullable: true },
    { name: 'at_ms', type: 'int' },
  ],
  primaryKey: ['user_id', 'kind', 'scope_id'],
  rowsMax: kcMembershipsMax,
  indexes: [{ name: 'kc_memberships_by_scope', columns: ['kind', 'scope_id'] }],
};

export const kcRoleGrantsTable: TableSchema = {
  name: 'kc_role_grants',
  columns: [
    { name: 'user_id', type: 'string' },
    { name: 'client', type: 'string' }, // '' for realm roles, else the client's id
    { name: 'role', type: 'string' },
    { name: 'at_ms', type: 'int' },
  ],
  primaryKey: ['user_id', 'client', 'role'],
  rowsMax: kcRoleGrantsMax,
};

export const kcLandingsTable: TableSchema = {
  name: 'kc_landings',
  columns: [
    { name: 'landing_id', type: 'string' },
    { name: 'applied_at_ms', type: 'int' },
    { name: 'effect', type: 'string' },
  ],
  primaryKey: ['landing_id'],
  // Oldest applied first: what is forgotten past kcLandingsKeptMax.
  indexes: [{ name: 'kc_landings_by_applied', columns: ['applied_at_ms', 'landing_id'] }],
};

type Fields = Record<string, unknown>;

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 && value.length <= kcFieldCharsMax ? value : undefined;
}

function kcId(value: unknown): string | undefined {
  return typeof value === 'string' && kcIdPattern.test(value) ? value : undefined;
}

function parseRepresentation(value: unknown): unknown {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') return value; // some senders embed it already parsed
  if (value.length > representationCharsMax) return undefined;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return undefined;
  }
}

/** The profile fields of kc_users an event may set, each stamped on its own (kc_versions [user, 'user', '', FIELD]). */
const userFields = ['username', 'email', 'first_name', 'last_name', 'enabled', 'email_verified'] as const;
type UserField = (typeof userFields)[number];
type UserFields = { [F in UserField]?: (F extends 'enabled' | 'email_verified' ? boolean : string) | undefined };

/** What a field holds when no event newer than the user's deletion set it (the row of a user never seen). */
function userFieldDefault(userId: string, field: UserField): string | boolean | null {
  if (field === 'username') return userId;
  if (field === 'enabled') return true;
  if (field === 'email_verified') return false;
  return null;
}

const userFieldThing = (userId: string, field: UserField): KcThing => [userId, 'user', '', field];

/**
 * An event writing some of a user's fields (creating the row when absent): each field it names
 * is set when the event is newer than that field's newest write, and the row's updated_at_ms is
 * the time of the newest event written to it. Nothing, when the user was deleted later.
 */
function writeUser({ ctx, clock, stamp, bounds }: Applying, userId: string, fields: UserFields, effect: string): string {
  clock.assertPastHorizon(stamp);
  const deleted = clock.deletion(userThing(userId));
  if (deleted && !newer(stamp, deleted)) return `ignored: ${effect}, older than the user's deletion at ${describeStamp(deleted)}`;
  const users = ctx.table('kc_users');
  assertRoomFor(users, [userId], bounds);
  const existing = users.get([userId]);
  const row: Record<string, unknown> = { user_id: userId };
  let fieldsWritten = 0;
  for (const field of userFields) {
    const value = fields[field];
    const thing = userFieldThing(userId, field);
    if (value !== undefined && newer(stamp, clock.version(thing))) {
      row[field] = value;
      clock.setVersion(thing, stamp);
      fieldsWritten++;
    } else {
      row[field] = existing ? existing[field] : userFieldDefault(userId, field);
    }
  }
  const rowVersion = clock.version(userThing(userId));
  const newest = newer(stamp, rowVersion);
  if (!newest && fieldsWritten === 0 && existing) return `ignored: ${effect}, older than the user's newest change at ${describeStamp(rowVersion!)}`;
  if (newest) clock.setVersion(userThing(userId), stamp);
  users.upsert({ ...row, updated_at_ms: newest ? stamp.timeMs : rowVersion!.timeMs });
  return effect;
}

/**
 * A user's deletion: the row, its fields and the user's memberships and role grants written
 * before it go; what a newer event wrote stays (it arrived first). It is recorded, so an older
 * event arriving later changes nothing of the user's.
 */
function deleteUser({ ctx, clock, stamp }: Applying, userId: string): string {
  clock.assertPastHorizon(stamp);
  const user = userThing(userId);
  const deleted = clock.deletion(user);
  if (deleted && !newer(stamp, deleted)) return `ignored: user deletion, the user was deleted later at ${describeStamp(deleted)}`;
  clock.setDeletion(user, stamp);
  // The user's deletion now stands for every older change of the user's: their own stamps go.
  // (The user row's own version and deletion, entity 'user' with no name, are handled apart.)
  const isUserRow = (r: Row) => r['entity'] === 'user' && r['name'] === '';
  const olderThings = [...clock.versionsOfUser(userId), ...clock.deletionsOfUser(userId)]
    .filter((r) => !isUserRow(r) && !newer(stampOfRow(r), stamp));
  for (const r of olderThings) {
    const thing: KcThing = [userId, r['entity'] as KcThing[1], r['scope'] as string, r['name'] as string];
    clock.forgetVersion(thing);
    if (r['entity'] !== 'user') clock.forgetDeletion(thing);
  }
  const users = ctx.table('kc_users');
  const existing = users.get([userId]);
  const rowVersion = clock.version(user);
  const rowGoes = newer(stamp, rowVersion);
  if (rowGoes) {
    users.delete([userId]);
    clock.forgetVersion(user);
  } else if (existing) {
    // A newer event wrote the user: fields it did not write are as the deletion left them.
    const row: Record<string, unknown> = { ...existing };
    for (const field of userFields) if (clock.version(userFieldThing(userId, field)) === undefined) row[field] = userFieldDefault(userId, field);
    users.upsert(row);
  }
  const memberships = ctx.table('kc_memberships');
  for (const m of [...memberships.scan({ prefix: [userId] })]) {
    const thing: KcThing = [userId, m['kind'] as 'group' | 'organization', m['scope_id'] as string, ''];
    if (clock.version(thing) === undefined) memberships.delete([userId, m['kind'] as string, m['scope_id'] as string]);
  }
  const grants = ctx.table('kc_role_grants');
  for (const g of [...grants.scan({ prefix: [userId] })]) {
    if (clock.version([userId, 'role', g['client'] as string, g['role'] as string]) === undefined) grants.delete([userId, g['client'] as string, g['role'] as string]);
  }
  return rowGoes ? 'user deleted' : `user deleted, then written again at ${describeStamp(rowVersion!)}: what that wrote stays`;
}

function applyUserEvent(at: Applying, type: string, event: Fields): string {
  const userId = kcId(event['userId']);
  if (!userId) return `ignored: ${type} without a usable userId`;
  const details = (event['details'] && typeof event['details'] === 'object' ? event['details'] : {}) as Fields;
  switch (type) {
    case 'REGISTER':
      return writeUser(at, userId, {
        username: str(details['username']), email: str(details['email']),
        first_name: str(details['first_name']), last_name: str(details['last_name']),
      }, 'user registered');
    case 'UPDATE_PROFILE':
      return writeUser(at, userId, {
        username: str(details['updated_username']) ?? str(details['username']),
        email: str(details['updated_email']) ?? str(details['email']),
        first_name: str(details['updated_first_name']) ?? str(details['first_name']),
        last_name: str(details['updated_last_name']) ?? str(details['last_name']),
      }, 'user profile updated');
    case 'UPDATE_EMAIL': {
      const email = str(details['updated_email']) ?? str(details['email']);
      if (!email) return 'ignored: UPDATE_EMAIL without an email';
      return writeUser(at, userId, { email, email_verified: false }, 'user email updated');
    }
    case 'VERIFY_EMAIL':
      return writeUser(at, userId, { email_verified: true }, 'user email verified');
    case 'DELETE_ACCOUNT':
      return deleteUser(at, userId);
    default:
      return `ignored: user event ${type}`;
  }
}

function roleNames(representation: unknown): string[] {
  const list = Array.isArray(representation) ? representation : representation ? [representation] : [];
  return list.slice(0, rolesPerEventMax).map((r) => (r && typeof r === 'object' ? str((r as Fields)['name']) : str(r))).filter((n): n is string => n !== undefined);
}

function applyAdminEvent(at: Applying, operation: string, resource: string, event: Fields): string {
  const resourcePath = typeof event['resourcePath'] === 'string' ? (event['resourcePath'] as string) : null;
  const path = resourcePath?.split('/') ?? [];
  const representation = parseRepresentation(event['representation']);
  const rep = (isJsonObject(representation) ? representation : {}) as Fields;
  // The user the event is about, read as the projector reads it to route the event.
  const subject = kcId(subjectUserOfEvent('admin', null, resource, resourcePath, representation));
  const adding = operation === 'CREATE' || operation === 'UPDATE';
  if (operation !== 'CREATE' && operation !== 'UPDATE' && operation !== 'DELETE') return `ignored: admin ${resource} ${operation}`;
  switch (resource) {
    case 'USER': {
      const userId = path[0] === 'users' ? subject : undefined;
      if (!userId || path.length !== 2) return 'ignored: USER event with an unexpected resourcePath';
      if (!adding) return deleteUser(at, userId);
      return writeUser(at, userId, {
        username: str(rep['username']), email: str(rep['email']), first_name: str(rep['firstName']), last_name: str(rep['lastName']),
        enabled: typeof rep['enabled'] === 'boolean' ? rep['enabled'] : undefined,
        email_verified: typeof rep['emailVerified'] === 'boolean' ? rep['emailVerified'] : undefined,
      }, operation === 'CREATE' ? 'user created' : 'user updated');
    }
    case 'GROUP_MEMBERSHIP': {
      // users/{userId}/groups/{groupId}
      const userId = path[0] === 'users' && path[2] === 'groups' ? subject : undefined;
      const groupId = kcId(path[3]) ?? kcId(rep['id']);
      if (!userId || !groupId) return 'ignored: GROUP_MEMBERSHIP event with an unexpected resourcePath';
      return setMembership(at, userId, 'group', groupId, str(rep['path']) ?? str(rep['name']), adding);
    }
    case 'ORGANIZATION_MEMBERSHIP': {
      // organizations/{orgId}/members/{userId}, or .../members with the member in the representation
      const orgId = path[0] === 'organizations' && path[2] === 'members' ? kcId(path[1]) : undefined;
      if (!orgId || !subject) return 'ignored: ORGANIZATION_MEMBERSHIP event with an unexpected resourcePath';
      return setMembership(at, subject, 'organization', orgId, null, adding);
    }
    case 'REALM_ROLE_MAPPING':
    case 'CLIENT_ROLE_MAPPING': {
      // users/{userId}/role-mappings/realm | users/{userId}/role-mappings/clients/{clientId}
      const userId = path[0] === 'users' && path[2] === 'role-mappings' ? subject : undefined;
      if (!userId) return `ignored: ${resource} not on a user`;
      const client = resource === 'REALM_ROLE_MAPPING' ? '' : (path[3] === 'clients' ? kcId(path[4]) : undefined);
      if (client === undefined) return 'ignored: CLIENT_ROLE_MAPPING without a client';
      const roles = roleNames(representation);
      let changed = 0;
      for (const role of roles) {
        const grant = adding ? { user_id: userId, client, role, at_ms: at.stamp.timeMs } : undefined;
        if (applyToThing(at, [userId, 'role', client, role], 'kc_role_grants', [userId, client, role], grant)) changed++;
      }
      const effect = `${changed} role(s) ${adding ? 'granted' : 'revoked'}`;
      return changed < roles.length ? `${effect}, ${roles.length - changed} ignored (changed by a later event)` : effect;
    }
    default:
      return `ignored: admin ${resource} ${operation}`;
  }
}

function setMembership(at: Applying, userId: string, kind: 'group' | 'organization', scopeId: string, scopeName: string | null | undefined, adding: boolean): string {
  const row = adding ? { user_id: userId, kind, scope_id: scopeId, scope_name: scopeName ?? null, at_ms: at.stamp.timeMs } : undefined;
  const effect = `${kind} membership ${adding ? 'added' : 'removed'}`;
  return applyToThing(at, [userId, kind, scopeId, ''], 'kc_memberships', [userId, kind, scopeId], row) ? effect : `ignored: ${effect}, changed by a later event`;
}

/**
 * A membership or role grant added (`row`) or removed (none), when the event is newer than the
 * thing's newest addition or removal and than its user's deletion. Whether it was applied.
 */
function applyToThing({ ctx, clock, stamp, bounds }: Applying, thing: KcThing, table: string, key: readonly string[], row: Record<string, unknown> | undefined): boolean {
  clock.assertPastHorizon(stamp);
  const newest = [clock.deletion(userThing(thing[0])), clock.version(thing), clock.deletion(thing)];
  if (!newest.every((known) => newer(stamp, known))) return false;
  if (row) {
    assertRoomFor(ctx.table(table), key, bounds);
    ctx.table(table).upsert(row);
    clock.forgetDeletion(thing);
    clock.setVersion(thing, stamp);
  } else {
    ctx.table(table).delete(key);
    clock.forgetVersion(thing);
    clock.setDeletion(thing, stamp);
  }
  return true;
}

/** Past `keptMax`, the oldest applied landings are forgotten, at most kcLandingsForgottenPerEventMax (see kc-bounds.ts). */
function forgetOldLandings(landings: TableWriter, keptMax: number): void {
  const excess = Math.min(landings.size - keptMax, kcLandingsForgottenPerEventMax);
  if (excess <= 0) return;
  const oldest = [...landings.scan({ index: 'kc_landings_by_applied', limit: excess })];
  for (const row of oldest) landings.delete([row['landing_id'] as string]);
}

/** One event being applied: its transaction, the projection's stamps, and the event's own. */
interface Applying {
  readonly ctx: ReducerContext;
  readonly clock: KcClock;
  readonly stamp: EventStamp;
  readonly bounds: KcBounds;
}

const applyArgs = z.object({
  landing_id: patterned(kcIdPattern, 'Keycloak id'),
  event: jsonObject,
});

/** System reducer (no tool): the Keycloak projector applies each landed event through it. */
export const kcApplyEvent = kcApplyEventKeeping();

/** The apply reducer within `bounds` (kc-bounds.ts; tests use small ones to watch them). */
export function kcApplyEventKeeping(given: Partial<KcBounds> = {}) {
  const bounds: KcBounds = { ...kcBoundsDefault, ...given };
  return defineReducer({
    name: 'kc_apply_event',
    args: applyArgs,
    run(ctx, a): { landing_id: string; applied: boolean; effect: string } {
      const landings = ctx.table('kc_landings');
      const seen = landings.get([a.landing_id]);
      if (seen) return { landing_id: a.landing_id, applied: false, effect: seen['effect'] as string };
      const event = a.event as Fields;
      const at: Applying = { ctx, clock: new KcClock(ctx, bounds), stamp: eventStamp(ctx, event), bounds };
      at.clock.forgetAgedDeletions(at.stamp);
      let effect: string;
      const type = typeof event['type'] === 'string' ? (event['type'] as string) : undefined;
      const adminType = type?.match(/^admin\.([A-Z_]+)-([A-Z]+)$/);
      if (typeof event['operationType'] === 'string' && typeof event['resourceType'] === 'string') {
        effect = applyAdminEvent(at, event['operationType'] as string, event['resourceType'] as string, event);
      } else if (adminType) {
        effect = applyAdminEvent(at, adminType[2]!, adminType[1]!, event);
      } else if (type !== undefined) {
        effect = applyUserEvent(at, type.replace(/^access\./, ''), event);
      } else {
        effect = 'ignored: neither a user event nor an admin event';
      }
      landings.insert({ landing_id: a.landing_id, applied_at_ms: ctx.timestampMs, effect });
      forgetOldLandings(landings, bounds.landingsKeptMax);
      return { landing_id: a.landing_id, applied: true, effect };
    },
  });
}

// ---- read tools (admin)

const userOutput = z.object({
  user_id: z.string(), username: z.string(), email: z.string().nullable(), first_name: z.string().nullable(),
  last_name: z.string().nullable(), enabled: z.boolean(), email_verified: z.boolean(),
});

function userView(row: Row): z.infer<typeof userOutput> {
  return {
    user_id: row['user_id'] as string, username: row['username'] as string, email: row['email'] as string | null,
    first_name: row['first_name'] as string | null, last_name: row['last_name'] as string | null,
    enabled: row['enabled'] as boolean, email_verified: row['email_verified'] as boolean,
  };
}

/** Memberships, and role grants, kc_user_get lists at most (each): a user stays one result. */
export const kcUserListedMax = 200;
/** Bytes of each list: both with the user's own fields fit pageItemsBytesMax (names are up to kcFieldCharsMax). */
const kcUserListedBytesMax = Math.floor(pageItemsBytesMax / 2) - 8 * 1024;

/** The first rows of a user's prefix, as `view` shows them, within kcUserListedMax and kcUserListedBytesMax. */
function listed<T>(table: TableReader, userId: string, view: (row: Row) => T): CollectedPage<T> {
  const rows = table.scan({ prefix: [userId] });
  return collectPage((function* () { for (const r of rows) yield view(r); })(), kcUserListedMax, kcUserListedBytesMax);
}

export const kcTools: ToolDef[] = [
  readTool({
    name: 'kc_user_get', title: 'Get Keycloak user', capability: 'admin',
    description: `A Keycloak user as projected here, with its first ${kcUserListedMax} memberships and role grants (memberships_truncated, roles_truncated: it has more).`,
    input: z.object({ user_id: patterned(kcIdPattern, 'Keycloak id') }),
    output: userOutput.extend({
      memberships: z.array(jsonObject), // {kind: group|organization, scope_id, scope_name}
      roles: z.array(jsonObject), // {client ('' = realm), role}
      memberships_truncated: z.boolean(),
      roles_truncated: z.boolean(),
    }),
    run: ({ memory }, a) => memory.store.read((view) => {
      const row = view.table('kc_users').get([a.user_id]);
      if (!row) throw new MemoryError('not_found', `Keycloak user ${a.user_id} is not known here`);
      const memberships = listed(view.table('kc_memberships'), a.user_id,
        (m) => ({ kind: m['kind'] as string, scope_id: m['scope_id'] as string, scope_name: m['scope_name'] as string | null }));
      const roles = listed(view.table('kc_role_grants'), a.user_id, (g) => ({ client: g['client'] as string, role: g['role'] as string }));
      return {
        ...userView(row), memberships: memberships.items, roles: roles.items,
        memberships_truncated: memberships.more, roles_truncated: roles.more,
      };
    }),
  }),
  readTool({
    name: 'kc_users_list', title: 'List Keycloak users', capability: 'admin',
    description: 'Keycloak users projected here, by id. Paged.',
    input: z.object({ cursor: pageCursor, limit: pageLimit }),
    output: z.object({ users: z.array(userOutput), next_cursor: z.string().optional() }),
    run: ({ memory, caller }, a) => memory.store.read((view) => {
      const scope = cursorScope(caller.tenant, 'kc_users_list');
      const after = a.cursor === undefined ? undefined : decodeCursorAs(scope, a.cursor, z.string());
      const rows = view.table('kc_users').scan(after === undefined ? {} : { range: { from: [after] } });
      const page = collectPage((function* () { for (const r of rows) if (r['user_id'] !== after) yield userView(r); })(), a.limit);
      return { users: page.items, ...nextCursorField(scope, page, (u) => u.user_id) };
    }),
  }),
];

export const kcReducers = [kcApplyEvent];
export const kcTables = [kcUsersTable, kcMembershipsTable, kcRoleGrantsTable, kcLandingsTable, ...kcClockTables];
