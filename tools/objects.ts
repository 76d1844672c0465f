/**
 * EAV objects, typed relations between them, object types (a JSON Schema for attributes,
 * enforced on every put and patch) and a small version table per object (who wrote which
 * version at which offset; the attribute images themselves stay in the commitlog).
 */
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import { isJsonObject } from '../storage/json-object.js';
import { frameBytesMax } from '../storage/log/frame.js';
import { defineReducer, type ReducerContext, type TableReader } from '../storage/reducer.js';
import type { Row, TableSchema } from '../storage/schema.js';
import { checkAttributes, compileAttributeSchema } from './attribute-schema.js';
import { cursorScope, decodeCursorAs, nextCursorField } from './cursor.js';
import { deleteEmbedding } from './embedding-rows.js';
import { readTool, writeTool } from './define-tool.js';
import { objectId, typeName } from './identifiers.js';
import { boundJsonBytes } from './json-bytes.js';
import { collectPage, pageCursor, pageLimit } from './result-page.js';
import type { ToolDef } from './tool.js';
import { int, jsonObject } from './wire-schema.js';

/**
 * Attributes larger than this (UTF-8 bytes of JSON) are refused. Half the result bound, so an
 * object with its id, type and version fields (object_get, object_get_as_of) or its history
 * fields (object_history) fits one result and one page item (pageItemsBytesMax).
 */
export const attributesBytesMax = 128 * 1024;
export const patchKeysMax = 256;
/** Version rows kept per object; older ones are evicted in the writing transaction. */
export const objectVersionsKeptMax = 1000;
/**
 * Relations touching one object, outgoing and incoming together: object_link refuses the one
 * past it at either end, so object_delete, which removes them with the object in one
 * transaction, stays within one log frame.
 */
export const relationsPerObjectMax = 10_000;
/**
 * The most one relation row weighs in a transaction: src and dst ids (128 ASCII characters
 * each), kind (64), the linking subject (at most 255 characters, server/auth's subjectCharsMax,
 * up to 3 UTF-8 bytes each) and the row's framing.
 */
const relationRowBytesMax = 128 + 128 + 64 + 255 * 3 + 128;
// A quarter of the frame stays for the deleted object itself, its embedding and its version row.
if (relationsPerObjectMax * relationRowBytesMax > frameBytesMax * 0.75) {
  throw new Error('relationsPerObjectMax: the relations object_delete removes would not fit one log frame');
}
/** Objects re-checked when a type's schema changes; past it the redefinition is refused. */
export const typeRecheckObjectsMax = 10_000;
export const typeDescriptionCharsMax = 1024;

export const objectsTable: TableSchema = {
  name: 'objects',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'type', type: 'string' },
    { name: 'attributes', type: 'json' },
    { name: 'version', type: 'int' },
    { name: 'created_at_ms', type: 'int' },
    { name: 'created_by', type: 'string' },
    { name: 'updated_at_ms', type: 'int' },
    { name: 'updated_by', type: 'string' },
  ],
  primaryKey: ['id'],
  indexes: [{ name: 'objects_by_type', columns: ['type'] }],
};

export const relationsTable: TableSchema = {
  name: 'relations',
  columns: [
    { name: 'src', type: 'string' },
    { name: 'kind', type: 'string' },
    { name: 'dst', type: 'string' },
    { name: 'created_at_ms', type: 'int' },
    { name: 'created_by', type: 'string' },
  ],
  primaryKey: ['src', 'kind', 'dst'],
  indexes: [{ name: 'relations_by_dst', columns: ['dst', 'kind'] }],
};

export const objectTypesTable: TableSchema = {
  name: 'object_types',
  columns: [
    { name: 'name', type: 'string' },
    { name: 'version', type: 'int' },
    { name: 'schema', type: 'json' },
    { name: 'description', type: 'string' },
    { name: 'updated_at_ms', type: 'int' },
    { name: 'updated_by', type: 'string' },
  ],
  primaryKey: ['name'],
};

export type ObjectOp = 'put' | 'patch' | 'delete';

export const objectVersionsTable: TableSchema = {
  name: 'object_versions',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'version', type: 'int' },
    { name: 'offset', type: 'int' },
    { name: 'reducer', type: 'string' },
    { name: 'subject', type: 'string' },
    { name: 'at_ms', type: 'int' },
    { name: 'op', type: 'string' },
  ],
  primaryKey: ['id', 'version'],
};

const attributes = jsonObject;

export interface ObjectView {
  id: string;
  type: string;
  attributes: Record<string, unknown>;
  version: number;
}

export function objectView(row: Row): ObjectView {
  return {
    id: row['id'] as string,
    type: row['type'] as string,
    attributes: row['attributes'] as Record<string, unknown>,
    version: row['version'] as number,
  };
}

function checkAttributesSize(value: unknown): void {
  boundJsonBytes('attributes', value, 'attributesBytesMax', attributesBytesMax, 'store large content elsewhere and keep a reference');
}

/** Enforce the type's schema, if the type is defined (undefined types are free-form). */
function enforceType(ctx: ReducerContext, type: string, attrs: unknown, id: string): void {
  const typeRow = ctx.table('object_types').get([type]);
  if (typeRow) checkAttributes(type, typeRow['version'] as number, typeRow['schema'], attrs, id);
}

function checkExpectedVersion(id: string, current: number, expected: number | undefined): void {
  if (expected !== undefined && expected !== current) {
    throw new MemoryError(
      'version_conflict',
      `object ${id} is at version ${current}, not ${expected}`,
      'read it again with object_get and retry with its version',
    );
  }
}

/** The next version of an object: versions keep counting across delete and re-create. */
function nextVersion(ctx: ReducerContext, id: string): number {
  for (const row of ctx.table('object_versions').scan({ prefix: [id], reverse: true, limit: 1 })) {
    return (row['version'] as number) + 1;
  }
  return 1;
}

function recordVersion(ctx: ReducerContext, id: string, version: number, reducer: string, op: ObjectOp): void {
  const versions = ctx.table('object_versions');
  versions.insert({ id, version, offset: ctx.offset, reducer, subject: ctx.caller.subject, at_ms: ctx.timestampMs, op });
  // Evict the oldest beyond the bound: at most one per write, so the check is O(1).
  if (version > objectVersionsKeptMax) versions.delete([id, version - objectVersionsKeptMax]);
}

function writeObject(ctx: ReducerContext, reducer: string, id: string, type: string, attrs: unknown, existing: Row | undefined, op: ObjectOp): number {
  // A live object's row carries its newest version (this function writes both): no history scan.
  const version = existing ? (existing['version'] as number) + 1 : nextVersion(ctx, id);
  ctx.table('objects').upsert({
    id,
    type,
    attributes: attrs,
    version,
    created_at_ms: existing ? existing['created_at_ms'] : ctx.timestampMs,
    created_by: existing ? existing['created_by'] : ctx.caller.subject,
    updated_at_ms: ctx.timestampMs,
    updated_by: ctx.caller.subject,
  });
  recordVersion(ctx, id, version, reducer, op);
  return version;
}

export function requireObject(ctx: { table(name: string): TableReader }, id: string, role = 'object'): Row {
  const row = ctx.table('objects').get([id]);
  if (!row) throw new MemoryError('not_found', `${role} ${id} does not exist`);
  return row;
}

// ---- object_put

const putArgs = z.object({
  id: objectId.optional(),
  type: typeName,
  attributes,
  expected_version: int(0).optional(),
});
const putResult = z.object({ id: z.string(), version: int() });

export const objectPut = defineReducer({
  name: 'object_put',
  args: putArgs,
  run(ctx, a): z.infer<typeof putResult> {
    checkAttributesSize(a.attributes);
    const objects = ctx.table('objects');
    let id = a.id;
    if (id === undefined && (a.expected_version ?? 0) > 0) {
      // A version names an existing object: without its id there is none to compare (a new id is at version 0).
      throw new MemoryError('invalid_argument', `expected_version ${a.expected_version} needs the object's id; without one object_put creates a new object`, 'pass id, or omit expected_version (0 = must not exist) to create');
    }
    if (id === undefined) {
      id = ctx.newId('obj');
      // A generated id never replaces an object: draw again (deterministically) on collision.
      while (objects.get([id]) || nextVersion(ctx, id) > 1) id = ctx.newId('obj');
    }
    const existing = objects.get([id]);
    checkExpectedVersion(id, existing ? (existing['version'] as number) : 0, a.expected_version);
    enforceType(ctx, a.type, a.attributes, id);
    return { id, version: writeObject(ctx, 'object_put', id, a.type, a.attributes, existing, 'put') };
  },
});

// ---- object_patch

const patchArgs = z.object({
  id: objectId,
  set: jsonObject.optional(),
  unset: z.array(z.string().min(1).max(256)).max(patchKeysMax).optional(),
  expected_version: int(1).optional(),
});

export const objectPatch = defineReducer({
  name: 'object_patch',
  args: patchArgs,
  run(ctx, a): z.infer<typeof putResult> {
    const set = a.set ?? {};
    const unset = a.unset ?? [];
    if (Object.keys(set).length + unset.length === 0) throw new MemoryError('invalid_argument', 'object_patch needs set or unset');
    if (Object.keys(set).length > patchKeysMax) throw new MemoryError('limit_exceeded', `set has more than ${patchKeysMax} keys`);
    const both = unset.find((k) => Object.prototype.hasOwnProperty.call(set, k));
    if (both !== undefined) throw new MemoryError('invalid_argument', `attribute ${both} is both set and unset`);
    const existing = requireObject(ctx, a.id);
    checkExpectedVersion(a.id, existing['version'] as number, a.expected_version);
    const next: Record<string, unknown> = { ...(existing['attributes'] as Record<string, unknown>), ...set };
    for (const k of unset) delete next[k];
    checkAttributesSize(next);
    const type = existing['type'] as string;
    enforceType(ctx, type, next, a.id);
    return { id: a.id, version: writeObject(ctx, 'object_patch', a.id, type, next, existing, 'patch') };
  },
});

// ---- object_delete

const deleteArgs = z.object({ id: objectId, expected_version: int(1).optional() });
const deleteResult = z.object({ version: int(), relations_removed: int() });

export const objectDelete = defineReducer({
  name: 'object_delete',
  args: deleteArgs,
  run(ctx, a): z.infer<typeof deleteResult> {
    const existing = requireObject(ctx, a.id);
    checkExpectedVersion(a.id, existing['version'] as number, a.expected_version);
    const relations = ctx.table('relations');
    // Relations and the embedding belong to the object: they go in the same transaction.
    const doomed = [
      ...relations.scan({ prefix: [a.id] }),
      ...relations.scan({ index: 'relations_by_dst', prefix: [a.id] }),
    ];
    let removed = 0;
    for (const r of doomed) if (relations.delete([r['src'] as string, r['kind'] as string, r['dst'] as string])) removed++;
    deleteEmbedding(ctx, a.id);
    ctx.table('objects').delete([a.id]);
    const version = nextVersion(ctx, a.id);
    recordVersion(ctx, a.id, version, 'object_delete', 'delete');
    return { version, relations_removed: removed };
  },
});

// ---- object_link / object_unlink

const linkArgs = z.object({ src: objectId, kind: typeName, dst: objectId });
const linkResult = z.object({ created: z.boolean() });

export const objectLink = defineReducer({
  name: 'object_link',
  args: linkArgs,
  run(ctx, a): z.infer<typeof linkResult> {
    requireObject(ctx, a.src, 'src object');
    requireObject(ctx, a.dst, 'dst object');
    const relations = ctx.table('relations');
    if (relations.get([a.src, a.kind, a.dst])) return { created: false };
    for (const [end, id] of [['src', a.src], ['dst', a.dst]] as const) {
      if (relationsTouching(relations, id) >= relationsPerObjectMax) {
        throw new MemoryError('limit_exceeded',
          `${end} object ${id} already has ${relationsPerObjectMax} relations, outgoing and incoming; the limit (relationsPerObjectMax) keeps it deletable in one transaction`,
          'unlink relations it no longer needs, or link through intermediate objects (e.g. one per group)');
      }
    }
    relations.insert({ src: a.src, kind: a.kind, dst: a.dst, created_at_ms: ctx.timestampMs, created_by: ctx.caller.subject });
    return { created: true };
  },
});

/** Relations from or to `id`, counted up to relationsPerObjectMax. */
function relationsTouching(relations: TableReader, id: string): number {
  const outgoing = relations.count({ prefix: [id], limit: relationsPerObjectMax });
  return outgoing + relations.count({ index: 'relations_by_dst', prefix: [id], limit: relationsPerObjectMax - outgoing });
}

const unlinkResult = z.object({});

export const objectUnlink = defineReducer({
  name: 'object_unlink',
  args: linkArgs,
  run(ctx, a): z.infer<typeof unlinkResult> {
    if (!ctx.table('relations').delete([a.src, a.kind, a.dst])) {
      throw new MemoryError('not_found', `no relation ${a.src} -${a.kind}-> ${a.dst}`);
    }
    return {};
  },
});

// ---- type_define

const typeDefineArgs = z.object({
  name: typeName,
  schema: jsonObject,
  description: z.string().max(typeDescriptionCharsMax).optional(),
});
const typeDefineResult = z.object({ name: z.string(), version: int(), changed: z.boolean() });

export const typeDefine = defineReducer({
  name: 'type_define',
  args: typeDefineArgs,
  run(ctx, a): z.infer<typeof typeDefineResult> {
    compileAttributeSchema(a.schema);
    const types = ctx.table('object_types');
    const existing = types.get([a.name]);
    const description = a.description ?? '';
    const schemaChanged = !existing || JSON.stringify(existing['schema']) !== JSON.stringify(sortedJson(a.schema));
    if (existing && !schemaChanged && existing['description'] === description) {
      return { name: a.name, version: existing['version'] as number, changed: false };
    }
    const version = existing ? (existing['version'] as number) + 1 : 1;
    // Existing objects of the type must satisfy a new schema, or the redefinition is refused
    // (a new description alone leaves them as valid as they were: nothing to re-check).
    let checked = 0;
    if (schemaChanged) for (const row of ctx.table('objects').scan({ index: 'objects_by_type', prefix: [a.name] })) {
      if (++checked > typeRecheckObjectsMax) {
        throw new MemoryError('limit_exceeded',
          `type ${a.name} has more than ${typeRecheckObjectsMax} objects to re-check against a new schema; the limit (typeRecheckObjectsMax) bounds one transaction`,
          'define the new schema under a new type name and move objects to it with object_put, or delete objects of this type first');
      }
      checkAttributes(a.name, version, a.schema, row['attributes'], row['id'] as string);
    }
    types.upsert({ name: a.name, version, schema: a.schema, description, updated_at_ms: ctx.timestampMs, updated_by: ctx.caller.subject });
    return { name: a.name, version, changed: true };
  },
});

/** The stored form of a JSON value (keys sorted), to compare with a stored row. */
function sortedJson(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => {
    if (!isJsonObject(v)) return v;
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]));
  }));
}

// ---- tools

const objectOutput = z.object({ id: z.string(), type: z.string(), attributes, version: int() });
const typeSummary = z.object({ name: z.string(), version: int(), description: z.string() });

export const objectTools: ToolDef[] = [
  writeTool({
    reducer: objectPut, args: putArgs, result: putResult, title: 'Put object',
    description: 'Create or replace an object (type + attributes; validated against the type schema if defined). Omit id to create. expected_version 0 = must not exist.',
  }),
  readTool({
    name: 'object_get', title: 'Get object', description: 'Read one object by id.',
    input: z.object({ id: objectId }), output: objectOutput,
    run: ({ memory }, a) => memory.store.read((view) => objectView(requireObject(view, a.id))),
  }),
  writeTool({
    reducer: objectPatch, args: patchArgs, result: putResult, title: 'Patch object',
    description: 'Set and/or unset top-level attributes of an object; the result is re-validated against its type.',
  }),
  writeTool({
    reducer: objectDelete, args: deleteArgs, result: deleteResult, title: 'Delete object', destructive: true, idempotent: true,
    description: 'Delete an object with its relations and embedding. History stays readable.',
  }),
  writeTool({
    reducer: objectLink, args: linkArgs, result: linkResult, title: 'Link objects', idempotent: true,
    description: 'Add a typed relation src -kind-> dst (no-op if present).',
  }),
  writeTool({
    reducer: objectUnlink, args: linkArgs, result: unlinkResult, title: 'Unlink objects', destructive: true, idempotent: true,
    description: 'Remove the relation src -kind-> dst.',
  }),
  writeTool({
    reducer: typeDefine, args: typeDefineArgs, result: typeDefineResult, title: 'Define type', idempotent: true,
    description: 'Define or replace an object type: a JSON Schema the attributes of its objects, existing ones too, must satisfy.',
  }),
  readTool({
    name: 'type_get', title: 'Get type', description: 'Read an object type and its JSON Schema.',
    input: z.object({ name: typeName }),
    output: typeSummary.extend({ schema: jsonObject }),
    run: ({ memory }, a) => memory.store.read((view) => {
      const row = view.table('object_types').get([a.name]);
      if (!row) throw new MemoryError('not_found', `type ${a.name} is not defined`);
      return { name: a.name, version: row['version'] as number, description: row['description'] as string, schema: row['schema'] as Record<string, unknown> };
    }),
  }),
  readTool({
    name: 'type_list', title: 'List types', description: 'List object types by name, paged.',
    input: z.object({ cursor: pageCursor, limit: pageLimit }),
    output: z.object({ types: z.array(typeSummary), next_cursor: z.string().optional() }),
    run: ({ memory, caller }, a) => memory.store.read((view) => {
      const scope = cursorScope(caller.tenant, 'type_list');
      const after = a.cursor === undefined ? undefined : decodeCursorAs(scope, a.cursor, z.string());
      const rows = view.table('object_types').scan(after === undefined ? {} : { range: { from: [after] } });
      const summaries = (function* () {
        for (const row of rows) {
          if (row['name'] === after) continue;
          yield { name: row['name'] as string, version: row['version'] as number, description: row['description'] as string };
        }
      })();
      const page = collectPage(summaries, a.limit);
      return { types: page.items, ...nextCursorField(scope, page, (t) => t.name) };
    }),
  }),
];

export const objectReducers = [objectPut, objectPatch, objectDelete, objectLink, objectUnlink, typeDefine];
export const objectTables = [objectsTable, relationsTable, objectTypesTable, objectVersionsTable];
