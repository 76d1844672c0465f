/**
 * The memory module: every domain's tables and reducers as one StoreModule, every tool as
 * a ToolDef, and `openTenantMemory`, which opens a tenant's store with the module and its
 * derived vector index. Adding a domain file and listing it here exposes its tools.
 */
import type { ReducerDef, StoreModule } from '../storage/reducer.js';
import type { FreeBytesOf } from '../storage/io/free-bytes.js';
import { nodeFileLayer } from '../storage/io/node-file-layer.js';
import { Store, storeSchemas, type StoreOptions } from '../storage/store.js';
import { accessLogReducers, accessLogTables, accessLogTools } from './access-log.js';
import { arReducers, arTables, arTools } from './ar.js';
import { bpmnReducers, bpmnTables, bpmnTools } from './bpmn.js';
import { chatReducers, chatTables, chatTools } from './chat.js';
import { EmbeddingIndex } from './embedding-index.js';
import { embeddingReducers, embeddingTables, embeddingTools } from './embeddings.js';
import { kcReducers, kcTables, kcTools } from './kc.js';
import type { RunHistoryReader, TenantMemory } from './memory.js';
import { objectReducers, objectTables, objectTools } from './objects.js';
import { queryTools } from './query.js';
import { runOutboxRemove, runOutboxTable } from './run-outbox.js';
import { runHistoryTools } from './run-history.js';
import { sessionReducers, sessionTables, sessionTools } from './sessions.js';
import { snapshotBeforeClose } from './tenant-snapshots.js';
import type { ToolDef } from './tool.js';

export { memoryCatalog } from '../resources/memory-catalog.js';

export const memoryModule: StoreModule = {
  tables: [
    ...objectTables, ...chatTables, ...embeddingTables, ...bpmnTables, ...sessionTables, runOutboxTable,
    ...arTables, ...accessLogTables, ...kcTables,
  ],
  // The tables of the first stores (2026-12-01): a table added after them is left out of the state
  // hash while it is empty, so existing stores open, restore and verify unchanged. Never edit it.
  tablesHashedWhenEmpty: [
    'objects', 'relations', 'object_types', 'object_versions', 'chat_threads', 'chat_messages', 'embeddings', 'embedding_models',
    'bpmn_instances', 'bpmn_tokens', 'bpmn_tasks', 'agent_sessions', 'run_outbox', 'ar_surfaces', 'ar_observations', 'access_log',
    'kc_users', 'kc_memberships', 'kc_role_grants', 'kc_landings',
  ],
  reducers: [
    ...objectReducers, ...chatReducers, ...embeddingReducers, ...bpmnReducers, ...sessionReducers, runOutboxRemove,
    ...arReducers, ...accessLogReducers, ...kcReducers,
  ] as ReducerDef[],
};

export const memoryTools: ToolDef[] = [
  ...objectTools, ...queryTools, ...embeddingTools, ...chatTools, ...bpmnTools, ...sessionTools, ...arTools,
  ...accessLogTools, ...kcTools, ...runHistoryTools,
];

/** Reducers the server and control plane call directly; they have no tool. */
export const systemReducerNames = ['run_outbox_remove', 'access_log_append', 'kc_apply_event'] as const;

assertUnique('table', memoryModule.tables.map((t) => t.name));
// Every table checked as the engine will (a column added later comes last, with its default; a retired table
// is not declared live too) when this module loads, not at the first tenant open.
storeSchemas(memoryModule);
assertUnique('reducer', memoryModule.reducers.map((r) => r.name));
assertUnique('tool', memoryTools.map((t) => t.name));
for (const tool of memoryTools) {
  if (!/^[a-z]+(_[a-z]+)+$/.test(tool.name)) throw new Error(`tool name ${tool.name} is not domain_verb snake_case`);
}

function assertUnique(what: string, names: readonly string[]): void {
  const seen = new Set<string>();
  for (const n of names) {
    if (seen.has(n)) throw new Error(`duplicate ${what} ${n}`);
    seen.add(n);
  }
}

export type TenantMemoryOptions = Omit<StoreOptions, 'dir' | 'module' | 'derived'> & {
  readonly runHistory?: RunHistoryReader;
  /** Free space where the store lives, read before the closing snapshot (tests play a full disk). */
  readonly freeBytesOf?: FreeBytesOf;
};

/**
 * Open a tenant's memory in `dir` (the caller validated the tenant and built the path). Closing
 * takes a snapshot first when the log since the newest one is long (tenant-snapshots.ts).
 */
export async function openTenantMemory(dir: string, tenant: string, options: TenantMemoryOptions = {}): Promise<TenantMemory> {
  const { runHistory, freeBytesOf, ...storeOptions } = options;
  const vectors = new EmbeddingIndex();
  const store = await Store.open({ ...storeOptions, dir, module: memoryModule, derived: [vectors] });
  const fl = storeOptions.fileLayer ?? nodeFileLayer;
  const onError = storeOptions.onBackgroundError ?? (() => undefined);
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await snapshotBeforeClose(store, fl, onError, freeBytesOf);
      await store.close();
    })());
  return { tenant, store, vectors, ...(runHistory ? { runHistory } : {}), close };
}
