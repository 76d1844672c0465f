/**
 * The real built server (`serve --http`, local mode) serving a tenant store whose log loses a
 * frame's integrity under it (a flipped byte in a frame acknowledged earlier): the history read
 * that meets it answers the caller `internal` with no path, and the operator's log line names
 * `ioboxx-memory store repair` on the tenant's absolute store directory (quoted for the shell),
 * as the log line of a failed open does (serve-damaged-store.test.ts).
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { segmentHeaderBytes } from '../../storage/log/segment.js';
import { connectNewerHttp, toolErrorOf } from '../support/mcp-clients.js';
import { waitUntil } from '../support/wait-until.js';
import { findLogLine, startHttpServer, type ServerProcess } from './server-process.js';

let dataDir: string;
let server: ServerProcess | undefined;

beforeAll(async () => {
  // A space in the path: the logged command must quote it.
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx e2e serving damage-'));
});

afterAll(async () => {
  await server?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

interface ToolFailedLine {
  msg: string;
  tool?: string;
  err?: { code: string; message: string; hint: string };
}

const toolFailedLine = (log: string) => findLogLine<ToolFailedLine>(log, (line) => line.msg === 'tool failed' && line.tool === 'object_history');

/** Flips a byte inside the payload of the frame of `offset`, in the segment that holds it (named by its first offset). */
async function damageFrame(logDir: string, offset: number): Promise<string> {
  const segment = (await readdir(logDir)).filter((f) => f.endsWith('.log')).sort().filter((f) => Number(f.slice(0, 20)) <= offset).at(-1)!;
  const file = path.join(logDir, segment);
  const buf = await readFile(file);
  let position = segmentHeaderBytes;
  for (let k = Number(segment.slice(0, 20)); k < offset; k++) position += 12 + buf.readUInt32LE(position + 8) + 4;
  buf[position + 20] = buf[position + 20]! ^ 0x40;
  await writeFile(file, buf);
  return file;
}

test("damage a served store meets in a history read: the caller gets internal without a path, the log line's hint is the repair command for the store", async () => {
  server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  const storeDir = path.join(dataDir, 'tenants', 'local');
  const client = await connectNewerHttp({ url: `${server.url}/mcp` });
  try {
    for (const n of [1, 2, 3]) expect((await client.callTool('object_put', { id: 'note-1', type: 'note', attributes: { n } })).isError).not.toBe(true);
    const history = await client.callTool('object_history', { id: 'note-1', include_attributes: true });
    const versions = history.structuredContent!['versions'] as Array<{ version: number; offset: number; image: string }>;
    const first = versions.find((v) => v.version === 1)!;
    expect(first.image).toBe('log'); // read back from the log: the read that meets the damage

    const victim = await damageFrame(path.join(storeDir, 'log'), first.offset);
    const refused = await client.callTool('object_history', { id: 'note-1', include_attributes: true });
    expect(toolErrorOf(refused)?.code).toBe('internal');
    expect(JSON.stringify(refused)).not.toContain(dataDir);

    await waitUntil('the tool failed log line', async () => toolFailedLine(server!.stderr()) !== undefined);
    const line = toolFailedLine(server.stderr())!;
    expect(line.err?.code).toBe('damaged_store');
    expect(line.err?.message).toContain(`damaged store: ${victim} at byte `);
    expect(line.err?.hint).toContain(`stop the process serving the store (it holds the store's LOCK), then run \`ioboxx-memory store repair '${storeDir}'\``);
  } finally {
    await client.close();
  }
}, 180_000);
