/**
 * The whole tools/list answer of the real memory tools stays under toolsListBytesMax (32 KB of
 * JSON, about 8k tokens), as each era's real client receives it.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { localPrincipal } from '../../server/auth/local-principal.js';
import { startHttpServer, type HttpServing } from '../../server/http/http-server.js';
import { fixedPrincipal, singleMemory, singleMemoryCommits } from '../../server/http/seams.js';
import { silentLogger } from '../../server/log.js';
import { toolsListBytesMax } from '../../server/mcp/limits.js';
import { allowedTools } from '../../server/mcp/tool-calls.js';
import { memoryCatalog, memoryTools } from '../../tools/index.js';
import { connectNewerHttp, connectOlderHttp } from '../support/mcp-clients.js';
import { createNotesMemory } from './fixtures/notes.js';

let serving: HttpServing;
beforeAll(async () => {
  const memory = createNotesMemory();
  serving = await startHttpServer({
    surface: { tools: memoryTools, catalog: memoryCatalog, log: silentLogger() },
    authenticate: fixedPrincipal(localPrincipal()),
    // tools/list never touches memory.
    memoryFor: singleMemory(memory),
    commitsOf: singleMemoryCommits(memory),
  });
});
afterAll(() => serving.close());

test('every memory tool is listed for a caller with every capability', () => {
  expect(allowedTools(memoryTools, localPrincipal()).map((t) => t.name)).toEqual(memoryTools.map((t) => t.name));
});

test.each([
  ['older', connectOlderHttp],
  ['newer', connectNewerHttp],
] as const)('the %s-era tools/list answer is under toolsListBytesMax', async (_era, connect) => {
  const client = await connect({ url: `${serving.url}/mcp` });
  try {
    const tools = await client.listTools();
    expect(tools.length).toBe(memoryTools.length);
    const bytes = Buffer.byteLength(JSON.stringify({ tools }));
    expect(bytes, `tools/list is ${bytes} bytes`).toBeLessThan(toolsListBytesMax);
  } finally {
    await client.close();
  }
});
