/**
 * Keycloak events as the webhook receives them, parsed and checked by pure functions.
 *
 * Two shapes arrive:
 *  - the stock event JSON: user events (`type`, `realmId`, `clientId`, `userId`, `time`,
 *    `details`, optional `id`) and admin events (`operationType`, `resourceType`,
 *    `resourcePath`, `representation` as a JSON string, `authDetails`, optional `id`);
 *  - the webhook-extension form: `type` prefixed `access.` (user) or `admin.` (admin, as
 *    `admin.RESOURCE-OPERATION`), with an event `uid`.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { JsonValue } from '../schema.js';
import { MemoryError } from '../errors.js';
import { isJsonObject } from '../json-object.js';

/** A webhook body larger than this is refused before parsing. */
export const keycloakEventBytesMax = 256 * 1024;
/**
 * An event's id/uid, type and organization id and alias are landed as Postgres text, indexed:
 * longer than this (Keycloak's are UUIDs and short names) an index row could pass Postgres's
 * limit, and the landing would fail the same way at every retry.
 */
export const keycloakFieldCharsMax = 512;
export const keycloakSignatureHeader = 'x-keycloak-signature';
/**
 * The event types (KeycloakEvent.type) the kc_* projection (tools/kc.ts) applies; the rest
 * (LOGIN, ...) it records as ignored. A user's history replayed to a tenant is these only.
 */
export const keycloakEventTypesProjected: readonly string[] = [
  'REGISTER', 'UPDATE_PROFILE', 'UPDATE_EMAIL', 'VERIFY_EMAIL', 'DELETE_ACCOUNT',
  ...['USER', 'GROUP_MEMBERSHIP', 'ORGANIZATION_MEMBERSHIP', 'REALM_ROLE_MAPPING', 'CLIENT_ROLE_MAPPING']
    .flatMap((resource) => ['CREATE', 'UPDATE', 'DELETE'].map((operation) => `${resource}-${operation}`)),
];
/**
 * The event types that change the user itself: profile fields and the account's existence.
 * Keycloak keeps one user per realm, whatever organizations they belong to, so such an event
 * reaches every tenant the user is known in, also when it names one organization (an
 * UPDATE_PROFILE in one organization's login flow). Memberships and role grants are not of these:
 * an event about them naming an organization reaches that tenant only.
 */
export const keycloakEventTypesOfUser: readonly string[] = [
  'REGISTER', 'UPDATE_PROFILE', 'UPDATE_EMAIL', 'VERIFY_EMAIL', 'DELETE_ACCOUNT', 'USER-CREATE', 'USER-UPDATE', 'USER-DELETE',
];
const hmacHexLength = 64;

export interface KeycloakEvent {
  readonly kind: 'user' | 'admin';
  /** The event's `id` or webhook `uid`; null when it carries neither. */
  readonly id: string | null;
  /** User: the event type (LOGIN, REGISTER, ...). Admin: `RESOURCE-OPERATION` (e.g. USER-CREATE). */
  readonly type: string;
  readonly realmId: string | null;
  readonly clientId: string | null;
  /** User events: the user; admin events: the acting user (authDetails.userId). */
  readonly userId: string | null;
  readonly timeMs: number;
  readonly details: Readonly<Record<string, string>>;
  readonly operationType: string | null;
  readonly resourceType: string | null;
  readonly resourcePath: string | null;
  /** Admin `representation`, parsed when it is JSON (it arrives as a string). */
  readonly representation: JsonValue | null;
  readonly organization: { readonly id: string | null; readonly alias: string | null };
  /** The user the event is about (see `subjectUserOfEvent`), or null. */
  readonly subjectUserId: string | null;
  /** See `tenantOfKeycloakEvent`. */
  readonly tenant: string | null;
  /** `id`/`uid` when present, else a SHA-256 of the raw body: what makes landing idempotent. */
  readonly dedupKey: string;
  readonly raw: JsonValue;
}

/** Timing-safe check of `X-Keycloak-Signature`: hex HMAC-SHA256 of the raw body (an optional `sha256=` prefix is accepted). */
export function verifyKeycloakSignature(rawBody: Uint8Array, signatureHeader: string | undefined, secret: string): boolean {
  if (!secret) throw new MemoryError('invalid_argument', 'Keycloak webhook secret is empty');
  if (!signatureHeader) return false;
  const given = signatureHeader.trim().replace(/^sha256=/i, '').toLowerCase();
  if (given.length !== hmacHexLength || !/^[0-9a-f]+$/.test(given)) return false;
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  return timingSafeEqual(expected, Buffer.from(given, 'hex'));
}

/** The signature a sender computes (tests and a local relay use it). */
export function signKeycloakBody(rawBody: Uint8Array | string, secret: string): string {
  return createHmac('sha256', secret).update(rawBody).digest('hex');
}

function str(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value : null;
}

function stringRecord(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isJsonObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === 'string') out[k] = v;
      else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    }
  }
  return out;
}

function parseRepresentation(value: unknown): JsonValue | null {
  if (typeof value === 'string') {
    try {
      return JSON.parse(value) as JsonValue;
    } catch {
      return value;
    }
  }
  return value === undefined ? null : (value as JsonValue);
}

function field(value: unknown, name: string): unknown {
  return isJsonObject(value) ? value[name] : undefined;
}

/** A resource path segment URI-decoded; null when empty or not decodable (a stray `%`), which names nothing. */
function decodedSegment(segment: string | undefined): string | null {
  if (!segment) return null;
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/**
 * The organization an event concerns, from the first place that names it:
 * details (`org_alias`/`organization_alias`/`organization`, `org_id`/`organization_id`/`organizationId`),
 * the event's own `organizationId`, the representation (an organization itself when
 * resourceType is ORGANIZATION: its `alias`/`id`; else its `organization` or `organizationId`),
 * and the resource path `organizations/{id}/...`.
 */
export function organizationOfEvent(
  raw: Record<string, unknown>,
  details: Record<string, string>,
  resourceType: string | null,
  resourcePath: string | null,
  representation: JsonValue | null,
): { id: string | null; alias: string | null } {
  let alias = details.org_alias ?? details.organization_alias ?? details.organization ?? null;
  let id = details.org_id ?? details.organization_id ?? details.organizationId ?? str(raw.organizationId);
  if (resourceType === 'ORGANIZATION') {
    alias ??= str(field(representation, 'alias'));
    id ??= str(field(representation, 'id'));
  }
  const nested = field(representation, 'organization');
  if (nested && typeof nested === 'object') {
    alias ??= str((nested as Record<string, unknown>).alias);
    id ??= str((nested as Record<string, unknown>).id);
  }
  alias ??= str(field(representation, 'organizationAlias'));
  id ??= str(field(representation, 'organizationId'));
  const fromPath = resourcePath ? /^organizations\/([^/]+)(?:\/|$)/.exec(resourcePath) : null;
  id ??= fromPath ? decodedSegment(fromPath[1]) : null;
  return { id, alias };
}

/**
 * The user an event is about: a user event's `userId`; an admin event's user in its resource
 * path (`users/{id}` and what lies under it, `organizations/{org}/members/{id}`, URI-decoded)
 * or, for an organization membership, the member its representation names (its `id`, or the
 * representation itself: Keycloak's add-member body is the bare user id). The one reading of
 * it: the projector learns from it which tenants know a user, so that an event naming no
 * organization (an admin disabling or deleting the user, DELETE_ACCOUNT) reaches them, and the
 * kc_* projection (tools/kc.ts) applies an admin event to it.
 */
export function subjectUserOfEvent(
  kind: 'user' | 'admin',
  userId: string | null,
  resourceType: string | null,
  resourcePath: string | null,
  representation: unknown,
): string | null {
  if (kind === 'user') return userId;
  const path = resourcePath?.split('/') ?? [];
  if (path[0] === 'users' && path[1]) return decodedSegment(path[1]);
  if (path[0] === 'organizations' && path[2] === 'members' && path[3]) return decodedSegment(path[3]);
  if (resourceType !== 'ORGANIZATION_MEMBERSHIP') return null;
  return typeof representation === 'string' ? str(representation) : str(field(representation, 'id'));
}

/**
 * The user whose account an event deletes realm-wide: a user's DELETE_ACCOUNT, an admin's
 * USER-DELETE of `users/{id}` (read as the kc_* projection, tools/kc.ts, reads them); null for any
 * other event. Once its deletion is applied to a tenant, the user is no longer known there
 * (kc_user_tenants): the projector forgets the pair.
 */
export function userDeletedBy(event: KeycloakEvent): string | null {
  if (event.kind === 'user') return event.type === 'DELETE_ACCOUNT' ? event.subjectUserId : null;
  if (event.type !== 'USER-DELETE' || event.resourcePath?.split('/').length !== 2) return null;
  return event.subjectUserId;
}

/**
 * The organization an admin's ORGANIZATION-DELETE of `organizations/{id}` deletes (its id), or
 * null for any other event.
 */
export function organizationDeletedBy(event: KeycloakEvent): string | null {
  if (event.type !== 'ORGANIZATION-DELETE' || event.kind !== 'admin') return null;
  const path = event.resourcePath?.split('/') ?? [];
  return path.length === 2 && path[0] === 'organizations' ? decodedSegment(path[1]) : null;
}

/**
 * The subject user as landed (kc_event_landing.subject_user, indexed): null when Postgres text
 * could not hold it or an index row would be too long (U+0000, over keycloakFieldCharsMax). No
 * such id is a Keycloak user id, and the projection ignores it anyway.
 */
export function landedSubjectUser(event: KeycloakEvent): string | null {
  return landableUser(event.subjectUserId);
}

/**
 * A subject user Postgres text can hold and index (no U+0000, at most keycloakFieldCharsMax), else
 * null: the projector looks such a user up and records it in kc_user_tenants, and an id it cannot
 * hold would fail that pass at every retry, stopping every later event of every tenant.
 */
function landableUser(user: string | null): string | null {
  return user !== null && user.length <= keycloakFieldCharsMax && !user.includes('\u0000') ? user : null;
}

/**
 * Tenant rule: a tenant is a Keycloak organization, named by its alias (the token's
 * `organization` claim names aliases). An event names its tenant by the organization alias
 * when it carries one, else by the organization id (the projector maps a known id to its
 * alias: `tenantOf` in keycloak-projector.ts); an event with no organization (a realm login,
 * a user's profile edit, an admin disabling the user) has no tenant: it lands, and the projector
 * applies it to every tenant its subject user is known in (none: it is skipped).
 */
export function tenantOfKeycloakEvent(organization: { id: string | null; alias: string | null }): string | null {
  return organization.alias ?? organization.id;
}

/** Parses one event body. Throws invalid_argument on anything that is not a Keycloak event. */
export function parseKeycloakEvent(rawBody: Uint8Array | string): KeycloakEvent {
  const bytes = typeof rawBody === 'string' ? Buffer.from(rawBody) : rawBody;
  if (bytes.byteLength > keycloakEventBytesMax) {
    throw new MemoryError('limit_exceeded', `Keycloak event larger than ${keycloakEventBytesMax} bytes`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new MemoryError('invalid_argument', 'Keycloak event is not JSON');
  }
  const event = keycloakEventFromJson(parsed, `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  assertLandable(event);
  return event;
}

/**
 * A received event's fields landed as Postgres text hold no U+0000 (text cannot) and are at most
 * keycloakFieldCharsMax long: else the landing would fail at every retry of the sender.
 */
function assertLandable(event: KeycloakEvent): void {
  const fields: Array<[string, string | null]> = [
    ['id', event.id], ['type', event.type], ['organization id', event.organization.id], ['organization alias', event.organization.alias],
  ];
  for (const [name, value] of fields) {
    if (value === null) continue;
    if (value.includes('\u0000')) throw new MemoryError('invalid_argument', `Keycloak event: its ${name} holds U+0000, which Postgres text cannot store`);
    if (value.length > keycloakFieldCharsMax) {
      throw new MemoryError('limit_exceeded', `Keycloak event: its ${name} is longer than ${keycloakFieldCharsMax} characters (keycloakFieldCharsMax)`);
    }
  }
}

/**
 * The same from an already parsed object (a landed event's stored JSON). `hashKey` is the
 * dedup key used when the event carries no id/uid.
 */
export function keycloakEventFromJson(parsed: unknown, hashKey: string): KeycloakEvent {
  if (!isJsonObject(parsed)) {
    throw new MemoryError('invalid_argument', 'Keycloak event must be a JSON object');
  }
  const raw = parsed as Record<string, unknown>;
  const rawType = str(raw.type);
  let kind: 'user' | 'admin';
  let type: string;
  let operationType = str(raw.operationType);
  let resourceType = str(raw.resourceType);
  if (rawType?.startsWith('access.')) {
    kind = 'user';
    type = rawType.slice('access.'.length);
  } else if (rawType?.startsWith('admin.')) {
    kind = 'admin';
    type = rawType.slice('admin.'.length);
    // `admin.RESOURCE-OPERATION`: the operation is the part after the last dash.
    const dash = type.lastIndexOf('-');
    if (dash > 0) {
      resourceType ??= type.slice(0, dash);
      operationType ??= type.slice(dash + 1);
    }
  } else if (operationType) {
    kind = 'admin';
    type = `${resourceType ?? 'UNKNOWN'}-${operationType}`;
  } else if (rawType) {
    kind = 'user';
    type = rawType;
  } else {
    throw new MemoryError('invalid_argument', 'Keycloak event has neither type nor operationType');
  }
  if (kind === 'admin' && (!operationType || !resourceType)) {
    throw new MemoryError('invalid_argument', 'Keycloak admin event needs operationType and resourceType');
  }
  const time = raw.time;
  if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0) {
    throw new MemoryError('invalid_argument', 'Keycloak event needs a numeric time (ms)');
  }
  const details = stringRecord(raw.details);
  const authDetails = stringRecord(raw.authDetails);
  const resourcePath = str(raw.resourcePath);
  const representation = parseRepresentation(raw.representation);
  const organization = organizationOfEvent(raw, details, resourceType, resourcePath, representation);
  const id = str(raw.id) ?? str(raw.uid);
  const dedupKey = id ? `id:${id}` : hashKey;
  const userId = str(raw.userId) ?? authDetails.userId ?? null;
  return {
    kind,
    id,
    type,
    realmId: str(raw.realmId) ?? authDetails.realmId ?? null,
    clientId: str(raw.clientId) ?? authDetails.clientId ?? null,
    userId,
    timeMs: time,
    details,
    operationType: kind === 'admin' ? operationType : null,
    resourceType: kind === 'admin' ? resourceType : null,
    resourcePath,
    representation,
    organization,
    subjectUserId: landableUser(subjectUserOfEvent(kind, userId, kind === 'admin' ? resourceType : null, resourcePath, representation)),
    tenant: tenantOfKeycloakEvent(organization),
    dedupKey,
    raw: raw as JsonValue,
  };
}
