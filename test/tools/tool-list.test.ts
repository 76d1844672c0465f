import { describe, expect, test } from 'vitest';
import { toolsListBytesMax } from '../../server/mcp/limits.js';
import { toolEntryOf } from '../../server/mcp/tool-schema.js';
import { memoryModule, memoryTools, systemReducerNames } from '../../tools/index.js';

describe('tools/list', () => {
  test('the whole tools/list answer, as the server renders it, stays under toolsListBytesMax (32 KB of JSON)', () => {
    // The server's own entries (compacted schemas); test/mcp/tools-list-size.test.ts checks what real clients receive.
    const bytes = Buffer.byteLength(JSON.stringify({ tools: memoryTools.map(toolEntryOf) }));
    expect(bytes, `tools/list is ${bytes} bytes`).toBeLessThan(toolsListBytesMax);
  });

  test('the fixed tools keep their names and shapes', () => {
    const put = memoryTools.find((t) => t.name === 'object_put')!;
    expect(Object.keys(put.input.shape).sort()).toEqual(['attributes', 'expected_version', 'id', 'idempotency_key', 'type']);
    expect(Object.keys(put.output.shape).sort()).toEqual(['id', 'offset', 'version']);
    const get = memoryTools.find((t) => t.name === 'object_get')!;
    expect(Object.keys(get.input.shape)).toEqual(['id']);
    expect(Object.keys(get.output.shape).sort()).toEqual(['attributes', 'id', 'type', 'version']);
  });

  test('every write tool takes an optional idempotency key and returns its offset; reads are read-only', () => {
    const reducers = new Set(memoryModule.reducers.map((r) => r.name));
    for (const tool of memoryTools) {
      expect(tool.annotations.openWorldHint).toBe(false);
      expect(tool.name).toMatch(/^[a-z]+(_[a-z]+)+$/);
      expect(tool.description.length).toBeLessThanOrEqual(200);
      if (reducers.has(tool.name)) {
        expect(tool.annotations.readOnlyHint, tool.name).toBe(false);
        expect(tool.input.shape).toHaveProperty('idempotency_key');
        expect(tool.input.safeParse({}).success ? 'all optional' : 'has required').toBeTruthy();
        expect(tool.output.shape).toHaveProperty('offset');
      } else {
        expect(tool.annotations.readOnlyHint, tool.name).toBe(true);
        expect(tool.annotations.destructiveHint).toBe(false);
      }
    }
  });

  test('delete, unlink and remove are destructive; system reducers have no tool', () => {
    const destructive = memoryTools.filter((t) => t.annotations.destructiveHint).map((t) => t.name).sort();
    expect(destructive).toEqual(['ar_surface_remove', 'chat_thread_remove', 'embedding_delete', 'object_delete', 'object_unlink']);
    for (const name of systemReducerNames) {
      expect(memoryModule.reducers.some((r) => r.name === name)).toBe(true);
      expect(memoryTools.some((t) => t.name === name)).toBe(false);
    }
  });

  test('capabilities: audit for the access log, admin for Keycloak projections, write for writes', () => {
    const byName = new Map(memoryTools.map((t) => [t.name, t]));
    expect(byName.get('access_log_list')!.capability).toBe('audit');
    expect(byName.get('kc_user_get')!.capability).toBe('admin');
    expect(byName.get('kc_users_list')!.capability).toBe('admin');
    expect(byName.get('object_put')!.capability).toBe('write');
    expect(byName.get('object_find')!.capability).toBe('read');
  });
});
