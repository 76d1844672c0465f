/**
 * Keycloak projections: kc_users, kc_memberships (groups, organizations) and
 * kc_role_grants, applied from landed Keycloak events by the system reducer
 * `kc_apply_event`. The landing id is recorded in kc_landings in the same transaction, so
 * re-applying a landing is a no-op (exactly once, across restarts). Events this projection
 * does not use (LOGIN, ...) or cannot read are recorded as ignored, never retried forever.
 *
 * Shapes understood: stock user events {type, userId, details, time} (types may carry the
 * webhook extension's `access.` prefix) and admin events {operationType, resourceType,
 * resourcePath, representation (a JSON string)}, or the extension's `admin.RESOURCE-OP` type.
 */
import { z } from 'zod';
import { subjectUserOfEvent } from '../storage/control/keycloak-event.js';
import { MemoryError } from '../storage/errors.js';
import { defineReducer, type ReducerContext, type TableReader } from '../storage/reducer.js';
import type { Row, TableSchema } from '../storage/schema.js';
import { cursorScope, decodeCursorAs, nextCursorField } from './cursor.js';
import { readTool } from './define-tool.js';
import { collectPage, pageCursor, pageItemsBytesMax, pageLimit, type CollectedPage } from './result-page.js';
import type { ToolDef } from './tool.js';
import { jsonObject } from './wire-schema.js';
import { patterned } from './identifiers.js';

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
};

export const kcLandingsTable: TableSchema = {
  name: 'kc_landings',
  columns: [
    { name: 'landing_id', type: 'string' },
    { name: 'applied_at_ms', type: 'int' },
    { name: 'effect', type: 'string' },
  ],
  primaryKey: ['landing_id'],
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

/** Merge known profile fields into the user's row (creating it when absent). */
function upsertUser(ctx: ReducerContext, userId: string, fields: { username?: string | undefined; email?: string | undefined; first_name?: string | undefined; last_name?: string | undefined; enabled?: boolean | undefined; email_verified?: boolean | undefined }): void {
  const users = ctx.table('kc_users');
  const existing = users.get([userId]);
  const pick = <T>(next: T | undefined, column: string, fallback: T): T => (next !== undefined ? next : existing ? (existing[column] as T) : fallback);
  users.upsert({
    user_id: userId,
    username: pick(fields.username, 'username', userId),
    email: pick<string | null>(fields.email, 'email', null),
    first_name: pick<string | null>(fields.first_name, 'first_name', null),
    last_name: pick<string | null>(fields.last_name, 'last_name', null),
    enabled: pick(fields.enabled, 'enabled', true),
    email_verified: pick(fields.email_verified, 'email_verified', false),
    updated_at_ms: ctx.timestampMs,
  });
}

function deleteUser(ctx: ReducerContext, userId: string): void {
  ctx.table('kc_users').delete([userId]);
  const memberships = ctx.table('kc_memberships');
  for (const m of [...memberships.scan({ prefix: [userId] })]) memberships.delete([userId, m['kind'] as string, m['scope_id'] as string]);
  const grants = ctx.table('kc_role_grants');
  for (const g of [...grants.scan({ prefix: [userId] })]) grants.delete([userId, g['client'] as string, g['role'] as string]);
}

function applyUserEvent(ctx: ReducerContext, type: string, event: Fields): string {
  const userId = kcId(event['userId']);
  if (!userId) return `ignored: ${type} without a usable userId`;
  const details = (event['details'] && typeof event['details'] === 'object' ? event['details'] : {}) as Fields;
  switch (type) {
    case 'REGISTER':
      upsertUser(ctx, userId, {
        username: str(details['username']), email: str(details['email']),
        first_name: str(details['first_name']), last_name: str(details['last_name']),
      });
      return 'user registered';
    case 'UPDATE_PROFILE':
      upsertUser(ctx, userId, {
        username: str(details['updated_username']) ?? str(details['username']),
        email: str(details['updated_email']) ?? str(details['email']),
        first_name: str(details['updated_first_name']) ?? str(details['first_name']),
        last_name: str(details['updated_last_name']) ?? str(details['last_name']),
      });
      return 'user profile updated';
    case 'UPDATE_EMAIL': {
      const email = str(details['updated_email']) ?? str(details['email']);
      if (!email) return 'ignored: UPDATE_EMAIL without an email';
      upsertUser(ctx, userId, { email, email_verified: false });
      return 'user email updated';
    }
    case 'VERIFY_EMAIL':
      upsertUser(ctx, userId, { email_verified: true });
      return 'user email verified';
    case 'DELETE_ACCOUNT':
      deleteUser(ctx, userId);
      return 'user deleted';
    default:
      return `ignored: user event ${type}`;
  }
}

function roleNames(representation: unknown): string[] {
  const list = Array.isArray(representation) ? representation : representation ? [representation] : [];
  return list.slice(0, rolesPerEventMax).map((r) => (r && typeof r === 'object' ? str((r as Fields)['name']) : str(r))).filter((n): n is string => n !== undefined);
}

function applyAdminEvent(ctx: ReducerContext, operation: string, resource: string, event: Fields): string {
  const resourcePath = typeof event['resourcePath'] === 'string' ? (event['resourcePath'] as string) : null;
  const path = resourcePath?.split('/') ?? [];
  const representation = parseRepresentation(event['representation']);
  const rep = (representation && typeof representation === 'object' && !Array.isArray(representation) ? representation : {}) as Fields;
  // The user the event is about, read as the projector reads it to route the event.
  const subject = kcId(subjectUserOfEvent('admin', null, resource, resourcePath, representation));
  const adding = operation === 'CREATE' || operation === 'UPDATE';
  if (operation !== 'CREATE' && operation !== 'UPDATE' && operation !== 'DELETE') return `ignored: admin ${resource} ${operation}`;
  switch (resource) {
    case 'USER': {
      const userId = path[0] === 'users' ? subject : undefined;
      if (!userId || path.length !== 2) return 'ignored: USER event with an unexpected resourcePath';
      if (!adding) {
        deleteUser(ctx, userId);
        return 'user deleted';
      }
      upsertUser(ctx, userId, {
        username: str(rep['username']), email: str(rep['email']), first_name: str(rep['firstName']), last_name: str(rep['lastName']),
        enabled: typeof rep['enabled'] === 'boolean' ? rep['enabled'] : undefined,
        email_verified: typeof rep['emailVerified'] === 'boolean' ? rep['emailVerified'] : undefined,
      });
      return operation === 'CREATE' ? 'user created' : 'user updated';
    }
    case 'GROUP_MEMBERSHIP': {
      // users/{userId}/groups/{groupId}
      const userId = path[0] === 'users' && path[2] === 'groups' ? subject : undefined;
      const groupId = kcId(path[3]) ?? kcId(rep['id']);
      if (!userId || !groupId) return 'ignored: GROUP_MEMBERSHIP event with an unexpected resourcePath';
      return setMembership(ctx, userId, 'group', groupId, str(rep['path']) ?? str(rep['name']), adding);
    }
    case 'ORGANIZATION_MEMBERSHIP': {
      // organizations/{orgId}/members/{userId}, or .../members with the member in the representation
      const orgId = path[0] === 'organizations' && path[2] === 'members' ? kcId(path[1]) : undefined;
      if (!orgId || !subject) return 'ignored: ORGANIZATION_MEMBERSHIP event with an unexpected resourcePath';
      return setMembership(ctx, subject, 'organization', orgId, null, adding);
    }
    case 'REALM_ROLE_MAPPING':
    case 'CLIENT_ROLE_MAPPING': {
      // users/{userId}/role-mappings/realm | users/{userId}/role-mappings/clients/{clientId}
      const userId = path[0] === 'users' && path[2] === 'role-mappings' ? subject : undefined;
      if (!userId) return `ignored: ${resource} not on a user`;
      const client = resource === 'REALM_ROLE_MAPPING' ? '' : (path[3] === 'clients' ? kcId(path[4]) : undefined);
      if (client === undefined) return 'ignored: CLIENT_ROLE_MAPPING without a client';
      const grants = ctx.table('kc_role_grants');
      const roles = roleNames(representation);
      for (const role of roles) {
        if (adding) grants.upsert({ user_id: userId, client, role, at_ms: ctx.timestampMs });
        else grants.delete([userId, client, role]);
      }
      return `${roles.length} role(s) ${adding ? 'granted' : 'revoked'}`;
    }
    default:
      return `ignored: admin ${resource} ${operation}`;
  }
}

function setMembership(ctx: ReducerContext, userId: string, kind: string, scopeId: string, scopeName: string | null | undefined, adding: boolean): string {
  const memberships = ctx.table('kc_memberships');
  if (adding) memberships.upsert({ user_id: userId, kind, scope_id: scopeId, scope_name: scopeName ?? null, at_ms: ctx.timestampMs });
  else memberships.delete([userId, kind, scopeId]);
  return `${kind} membership ${adding ? 'added' : 'removed'}`;
}

const applyArgs = z.object({
  landing_id: patterned(kcIdPattern, 'Keycloak id'),
  event: jsonObject,
});

/** System reducer (no tool): the Keycloak projector applies each landed event through it. */
export const kcApplyEvent = defineReducer({
  name: 'kc_apply_event',
  args: applyArgs,
  run(ctx, a): { landing_id: string; applied: boolean; effect: string } {
    const landings = ctx.table('kc_landings');
    const seen = landings.get([a.landing_id]);
    if (seen) return { landing_id: a.landing_id, applied: false, effect: seen['effect'] as string };
    const event = a.event as Fields;
    let effect: string;
    const type = typeof event['type'] === 'string' ? (event['type'] as string) : undefined;
    const adminType = type?.match(/^admin\.([A-Z_]+)-([A-Z]+)$/);
    if (typeof event['operationType'] === 'string' && typeof event['resourceType'] === 'string') {
      effect = applyAdminEvent(ctx, event['operationType'] as string, event['resourceType'] as string, event);
    } else if (adminType) {
      effect = applyAdminEvent(ctx, adminType[2]!, adminType[1]!, event);
    } else if (type !== undefined) {
      effect = applyUserEvent(ctx, type.replace(/^access\./, ''), event);
    } else {
      effect = 'ignored: neither a user event nor an admin event';
    }
    landings.insert({ landing_id: a.landing_id, applied_at_ms: ctx.timestampMs, effect });
    return { landing_id: a.landing_id, applied: true, effect };
  },
});

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
export const kcTables = [kcUsersTable, kcMembershipsTable, kcRoleGrantsTable, kcLandingsTable];
