/**
 * The factory on its own, over an in-memory transport pair with the 1.x client: the
 * revalidation hook refuses every request once the principal no longer holds, and a
 * server's change feed lives exactly as long as the server.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport as OlderTransport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { InMemoryTransport } from '@modelcontextprotocol/server';
import { expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { silentLogger } from '../../server/log.js';
import { createMemoryServer, type MemoryServerSession } from '../../server/mcp/factory.js';
import type { McpSurface } from '../../server/mcp/surface.js';
import { MemoryError } from '../../storage/errors.js';
import { toolErrorOf, type ToolResult } from '../support/mcp-clients.js';
import { createNotesMemory, notesCatalog, notesTools, type NotesMemory } from './fixtures/notes.js';

const surface: McpSurface = { tools: notesTools, catalog: notesCatalog, log: silentLogger() };

async function connected(memory: NotesMemory, session: Partial<MemoryServerSession> = {}) {
  const server = createMemoryServer(surface, { principal: localPrincipal(), memory, changes: 'subscribed', ...session });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'factory-test', version: '0' });
  await client.connect(clientSide as unknown as OlderTransport);
  return { server, client };
}

test('once revalidation fails, tools and resources are refused with its code', async () => {
  let expired = false;
  const revalidate = async () => {
    if (expired) throw new MemoryError('unauthenticated', 'IOBOXX_TOKEN has expired', 'restart with a fresh token');
  };
  const { client } = await connected(createNotesMemory(), { revalidate });
  expect((await client.callTool({ name: 'note_put', arguments: { id: 'a', text: 'ok' } })).isError).toBeFalsy();
  expired = true;
  const refused = (await client.callTool({ name: 'note_put', arguments: { id: 'b', text: 'late' } })) as ToolResult;
  expect(toolErrorOf(refused)).toEqual({ code: 'unauthenticated', message: 'IOBOXX_TOKEN has expired', hint: 'restart with a fresh token' });
  await expect(client.listResources()).rejects.toThrow(/IOBOXX_TOKEN has expired/);
  // tools/list as resources/* answer it: the error's own JSON-RPC code (unauthenticated: -32600), not -32603.
  await expect(client.listTools()).rejects.toMatchObject({ code: -32600, message: expect.stringMatching(/IOBOXX_TOKEN has expired/) });
  await client.close();
});

test('a server listens to commits only while it lives, and per-request servers never do', async () => {
  const memory = createNotesMemory();
  const { server } = await connected(memory);
  expect(memory.notes.listenerCount).toBe(1);
  await server.close();
  expect(memory.notes.listenerCount).toBe(0);

  await connected(memory, { changes: 'none' });
  expect(memory.notes.listenerCount).toBe(0);
});

test('a caller without read gets no change feed and is refused resources', async () => {
  const memory = createNotesMemory();
  const writer = { ...localPrincipal(), capabilities: new Set(['write'] as const) };
  const { client } = await connected(memory, { principal: writer });
  expect(memory.notes.listenerCount).toBe(0);
  await expect(client.readResource({ uri: 'memory://notes/a' })).rejects.toThrow(/read capability/);
  await expect(client.subscribeResource({ uri: 'memory://notes/a' })).rejects.toThrow(/read capability/);
  await client.close();
});

test('a resource error carries the same {error} body as tool errors, in the JSON-RPC error data', async () => {
  const { client } = await connected(createNotesMemory());
  const failure = await client.readResource({ uri: 'memory://notes/absent' }).then(
    () => undefined,
    (error: unknown) => error as { code: number; data?: unknown },
  );
  // -32602 with data.uri: the 2026-07-28 answer to a read miss, on every revision.
  expect(failure?.code).toBe(-32602);
  expect(failure?.data).toEqual({ uri: 'memory://notes/absent', error: { code: 'not_found', message: 'no resource memory://notes/absent' } });
  const forged = await client.listResources({ cursor: 'forged' }).then(
    () => undefined,
    (error: unknown) => error as { data?: { error?: { code?: string } } },
  );
  expect(forged?.data?.error?.code).toBe('invalid_argument');
  await client.close();
});
