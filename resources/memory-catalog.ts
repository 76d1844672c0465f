/**
 * The memory as MCP resources: one URI per row of each served table (a template per
 * table), paged listing with opaque checked cursors, reads returning JSON text, and the
 * mapping from a durable transaction's row changes to exactly the URIs whose read changed.
 * Each kind says which tables its read depends on (`sources`): that list is what makes
 * changedUris exact, so a kind's read must use nothing else.
 */
import { z } from 'zod';
import type { TxRecord } from '../storage/changes.js';
import { MemoryError } from '../storage/errors.js';
import type { ReadView, TableReader } from '../storage/reducer.js';
import type { JsonValue, Row } from '../storage/schema.js';
import { bpmnInstanceView } from '../tools/bpmn.js';
import { messageView, threadView } from '../tools/chat.js';
import { cursorScope, decodeCursorAs, encodeCursor } from '../tools/cursor.js';
import { arSurfaceView } from '../tools/ar.js';
import type { TenantMemory } from '../tools/memory.js';
import { objectView } from '../tools/objects.js';
import { collectPage } from '../tools/result-page.js';
import { sessionView } from '../tools/sessions.js';
import type { ResourceCatalog, ResourceContent, ResourceEntry, ResourceTemplateDef } from './catalog.js';
import { formatMemoryUri, parseMemoryUri, resourceKinds, type ResourceKind } from './memory-uri.js';

/** Resources per resources/list page. */
export const resourcesPageSize = 100;
/** Newest messages a chat thread's resource carries (also bounded by bytes). */
export const chatResourceMessagesMax = 50;

const mimeType = 'application/json';

interface ServedKind {
  readonly kind: ResourceKind;
  /** The table listed: one resource per row. */
  readonly table: string;
  readonly idColumn: string;
  /** Every table the read depends on, with the column that holds this kind's id. */
  readonly sources: readonly { readonly table: string; readonly column: string }[];
  readonly template: Omit<ResourceTemplateDef, 'uriTemplate' | 'mimeType'>;
  title(row: Row): string | undefined;
  read(view: { table(name: string): TableReader }, id: string): unknown;
}

const kinds: readonly ServedKind[] = [
  {
    kind: 'objects', table: 'objects', idColumn: 'id', sources: [{ table: 'objects', column: 'id' }],
    template: { name: 'object', title: 'Object', description: 'An object: type, attributes, version.' },
    title: (row) => `${String(row['type'])} ${String(row['id'])}`,
    read: (view, id) => {
      const row = view.table('objects').get([id]);
      return row ? { ...objectView(row), updated_at_ms: row['updated_at_ms'] } : undefined;
    },
  },
  {
    kind: 'types', table: 'object_types', idColumn: 'name', sources: [{ table: 'object_types', column: 'name' }],
    template: { name: 'type', title: 'Object type', description: 'An object type and the JSON Schema of its attributes.' },
    title: (row) => `type ${String(row['name'])}`,
    read: (view, id) => {
      const row = view.table('object_types').get([id]);
      return row ? { name: id, version: row['version'], description: row['description'], schema: row['schema'] } : undefined;
    },
  },
  {
    kind: 'chat', table: 'chat_threads', idColumn: 'id',
    sources: [{ table: 'chat_threads', column: 'id' }, { table: 'chat_messages', column: 'thread' }],
    template: { name: 'chat_thread', title: 'Chat thread', description: `A chat thread with its newest ${chatResourceMessagesMax} messages.` },
    title: (row) => (row['title'] as string) || `thread ${String(row['id'])}`,
    read: (view, id) => {
      const row = view.table('chat_threads').get([id]);
      if (!row) return undefined;
      const newest = view.table('chat_messages').scan({ prefix: [id], reverse: true });
      const page = collectPage((function* () { for (const m of newest) yield messageView(m); })(), chatResourceMessagesMax);
      return { ...threadView(row), messages: page.items.reverse() };
    },
  },
  {
    kind: 'bpmn', table: 'bpmn_instances', idColumn: 'id',
    sources: [{ table: 'bpmn_instances', column: 'id' }, { table: 'bpmn_tokens', column: 'instance' }, { table: 'bpmn_tasks', column: 'instance' }],
    template: { name: 'bpmn_instance', title: 'Process instance', description: 'A BPMN process instance with its tokens and user tasks.' },
    title: (row) => `${String(row['definition'])} ${String(row['id'])}`,
    read: (view, id) => bpmnInstanceView(view, id),
  },
  {
    kind: 'sessions', table: 'agent_sessions', idColumn: 'id', sources: [{ table: 'agent_sessions', column: 'id' }],
    template: { name: 'agent_session', title: 'Agent session', description: 'An agent session: agent, state, outcome.' },
    title: (row) => `${String(row['agent'])} ${String(row['id'])}`,
    read: (view, id) => sessionView(view, id),
  },
  {
    kind: 'ar', table: 'ar_surfaces', idColumn: 'surface', sources: [{ table: 'ar_surfaces', column: 'surface' }],
    template: { name: 'ar_surface', title: 'AR surface', description: 'The latest observed state of an AR surface.' },
    title: (row) => `surface ${String(row['surface'])}`,
    read: (view, id) => arSurfaceView(view, id),
  },
];

const kindByName = new Map(kinds.map((k) => [k.kind, k]));
if (kinds.length !== resourceKinds.length) throw new Error('every resource kind needs a served table');

/** Listing position: the kind being listed and the id of the last row listed in it. */
const listPosition = z.object({ k: z.int().min(0).max(kinds.length - 1), after: z.string().optional() });
type ListPosition = z.infer<typeof listPosition>;

function listPage(view: ReadView, start: ListPosition): { resources: ResourceEntry[]; next?: ListPosition } {
  const resources: ResourceEntry[] = [];
  let position: ListPosition | undefined = start;
  while (position && resources.length < resourcesPageSize) {
    const served: ServedKind = kinds[position.k]!;
    const after: string | undefined = position.after;
    // Every served table is keyed by its id alone: continue from the id of the last row listed.
    const rows = view.table(served.table).scan(after === undefined ? {} : { range: { from: [after] } });
    let last: string | undefined;
    let more = false;
    for (const row of rows) {
      const id = row[served.idColumn] as string;
      if (id === after) continue;
      if (resources.length === resourcesPageSize) {
        more = true;
        break;
      }
      const title = served.title(row);
      resources.push({ uri: formatMemoryUri(served.kind, id), name: `${served.kind}/${id}`, ...(title ? { title } : {}), mimeType });
      last = id;
    }
    if (more) position = { k: position.k, after: last ?? after! };
    else position = position.k + 1 < kinds.length ? { k: position.k + 1 } : undefined;
  }
  return position ? { resources, next: position } : { resources };
}

export const memoryCatalog: ResourceCatalog = {
  templates: kinds.map((k) => ({ ...k.template, uriTemplate: `memory://${k.kind}/{id}`, mimeType })),

  async list(memory: TenantMemory, cursor?: string) {
    const scope = cursorScope(memory.tenant, 'resources/list');
    const start = cursor === undefined ? { k: 0 } : decodeCursorAs(scope, cursor, listPosition);
    const page = await memory.store.read((view) => listPage(view, start));
    return page.next ? { resources: page.resources, nextCursor: encodeCursor(scope, page.next as unknown as JsonValue) } : { resources: page.resources };
  },

  async read(memory: TenantMemory, uri: string): Promise<ResourceContent> {
    const { kind, id } = parseMemoryUri(uri);
    const served = kindByName.get(kind)!;
    const content = await memory.store.read((view) => served.read(view, id));
    if (content === undefined) throw new MemoryError('not_found', `no resource ${uri}`);
    return { uri: formatMemoryUri(kind, id), mimeType, text: JSON.stringify(content) };
  },

  canonicalUri(uri: string): string {
    const { kind, id } = parseMemoryUri(uri);
    return formatMemoryUri(kind, id);
  },

  changedUris(tx: TxRecord): string[] {
    const uris = new Set<string>();
    for (const change of tx.changes) {
      for (const served of kinds) {
        for (const source of served.sources) {
          if (source.table !== change.table) continue;
          for (const row of [...change.deletes, ...change.inserts]) uris.add(formatMemoryUri(served.kind, row[source.column] as string));
        }
      }
    }
    return [...uris];
  },
};
