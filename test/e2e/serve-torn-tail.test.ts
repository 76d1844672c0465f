/**
 * The real built server (`serve --http`, local mode) restarted on a store whose log ends in a
 * torn write (bytes a crash left after the last frame, never synced): the open cuts them, keeps
 * them aside in `log/torn-*.bin`, serves every acknowledged write, and says so in the operator's
 * log, naming the segment, the byte and the file the bytes were kept in.
 */
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connectNewerHttp } from '../support/mcp-clients.js';
import { waitUntil } from '../support/wait-until.js';
import { findLogLine, startHttpServer, type ServerProcess } from './server-process.js';

/** A frame header cut short by a crash: fewer bytes than a whole header. */
const tornBytes = Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);

let dataDir: string;
let server: ServerProcess | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-e2e-torn-tail-'));
});

afterAll(async () => {
  await server?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

interface TornLine { msg: string; tenant?: string; file?: string; position?: number; bytes?: number; keptAt?: string }

test('a restart that finds a torn tail cuts it, keeps its bytes aside, serves every acknowledged write and logs what it cut', async () => {
  const logDir = path.join(dataDir, 'tenants', 'local', 'log');
  server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  let client = await connectNewerHttp({ url: `${server.url}/mcp` });
  for (const n of [1, 2, 3]) expect((await client.callTool('object_put', { id: `note-${n}`, type: 'note', attributes: { n } })).isError).not.toBe(true);
  await client.close();
  expect(await server.stop()).toBe(0);

  const segment = path.join(logDir, (await readdir(logDir)).filter((f) => f.endsWith('.log')).sort().at(-1)!);
  const cleanBytes = (await readFile(segment)).length;
  await appendFile(segment, tornBytes);

  server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  client = await connectNewerHttp({ url: `${server.url}/mcp` });
  try {
    for (const n of [1, 2, 3]) expect((await client.callTool('object_get', { id: `note-${n}` })).structuredContent).toMatchObject({ attributes: { n } });
  } finally {
    await client.close();
  }
  const kept = (await readdir(logDir)).filter((f) => f.startsWith('torn-'));
  expect(kept).toHaveLength(1);
  expect(await readFile(path.join(logDir, kept[0]!))).toEqual(tornBytes);

  const tornLine = (log: string) => findLogLine<TornLine>(log, (line) => line.msg.startsWith('tenant store log ended in a torn write'));
  await waitUntil('the torn tail log line', async () => tornLine(server!.stderr()) !== undefined);
  expect(tornLine(server.stderr())).toMatchObject({ tenant: 'local', file: segment, position: cleanBytes, bytes: tornBytes.length, keptAt: path.join(logDir, kept[0]!) });
}, 180_000);
