/**
 * Which tables a WebSocket client may subscribe to, and the capability each needs. Tables
 * not listed (the engine's idempotency keys, for one) do not exist as far as a client can
 * tell. The default follows the tools: Keycloak projections and the run outbox are admin
 * matters, the access log is for auditors, everything else is working memory (read).
 */
import type { TableSchema } from '../../storage/schema.js';
import { accessLogTable } from '../../tools/access-log.js';
import { memoryModule } from '../../tools/index.js';
import { kcTables } from '../../tools/kc.js';
import { runOutboxTable } from '../../tools/run-outbox.js';
import type { Capability } from '../../tools/tool.js';

export interface ExposedTable {
  readonly schema: TableSchema;
  readonly capability: Capability;
}

export type ExposedTables = ReadonlyMap<string, ExposedTable>;

export function exposedTables(schemas: readonly TableSchema[], capabilityOf: (schema: TableSchema) => Capability): ExposedTables {
  return new Map(schemas.map((schema) => [schema.name, { schema, capability: capabilityOf(schema) }]));
}

const adminTables = new Set([...kcTables.map((t) => t.name), runOutboxTable.name]);

/** Every table of the memory module, with the capability its read tools need. */
export function memoryExposedTables(): ExposedTables {
  return exposedTables(memoryModule.tables, (schema) =>
    adminTables.has(schema.name) ? 'admin' : schema.name === accessLogTable.name ? 'audit' : 'read',
  );
}
