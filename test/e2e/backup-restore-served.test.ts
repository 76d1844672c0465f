/**
 * An operator's backup and restore around the real built server: `backup local DIR --json` while
 * MCP clients of both eras keep writing over HTTP, `restore DIR local` into another data directory,
 * and a server started there serves the tenant with exactly the acknowledged writes up to the
 * backup's end offset: every object as it was, its history (object_history) and as-of reads
 * (object_get_as_of) intact, the source's as-of read at that offset the same.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { connectNewerHttp, connectOlderHttp, type McpTestClient } from '../support/mcp-clients.js';
import { runProcess } from '../support/run-process.js';
import { baseEnv, serverBin, startHttpServer, type ServerProcess } from './server-process.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-served-'));
const servers: ServerProcess[] = [];
const clients: McpTestClient[] = [];
afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  for (const s of servers) await s.stop();
  rmSync(work, { recursive: true, force: true });
});

async function server(dataDir: string): Promise<string> {
  const s = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  servers.push(s);
  return `${s.url}/mcp`;
}

function operator(...args: string[]) {
  return runProcess(process.execPath, [serverBin, ...args], { env: { ...baseEnv(), IOBOXX_LOG_LEVEL: 'silent' } });
}

interface Ack { readonly id: string; readonly n: number; readonly offset: number }
const idsPerWriter = 6;

function structured<T>(result: { isError?: boolean; structuredContent?: Record<string, unknown>; content: unknown }): T {
  expect(result.isError, JSON.stringify(result.content)).toBeFalsy();
  return result.structuredContent as T;
}

test('a backup taken under writes restores, and a server on the restored data serves its objects, history and as-of reads as acknowledged up to its end offset', async () => {
  const sourceData = path.join(work, 'source');
  const sourceUrl = await server(sourceData);
  const writers = [await connectOlderHttp({ url: sourceUrl }), await connectNewerHttp({ url: sourceUrl })];
  clients.push(...writers);
  const acks: Ack[] = [];
  let writing = true;
  const loops = writers.map(async (client, w) => {
    for (let n = 0; writing || n < 20; n++) {
      const id = `w${w}-${n % idsPerWriter}`;
      const put = structured<{ offset: number }>(await client.callTool('object_put', { id, type: 'note', attributes: { n, w } }));
      acks.push({ id, n, offset: put.offset });
    }
  });
  while (acks.length < 40) await new Promise((resolve) => setTimeout(resolve, 20));

  const backupDir = path.join(work, 'backup');
  const taken = await operator('backup', 'local', backupDir, '--json', '--data-dir', sourceData);
  writing = false;
  await Promise.all(loops);
  expect(taken.code, taken.stderr).toBe(0);
  const backup = JSON.parse(taken.stdout) as { ok: true; endOffset: number; stateHash: string };
  const endOffset = backup.endOffset;
  const ackedBefore = acks.filter((a) => a.offset <= endOffset).sort((a, b) => a.offset - b.offset);
  expect(ackedBefore.length, 'the backup holds no acknowledged write').toBeGreaterThan(0);

  const restoredData = path.join(work, 'restored');
  const restore = await operator('restore', backupDir, 'local', '--json', '--data-dir', restoredData);
  expect(restore.code, restore.stderr).toBe(0);
  expect(JSON.parse(restore.stdout)).toMatchObject({ ok: true, endOffset, stateHash: backup.stateHash, stateHashVerified: true });

  const reader = await connectOlderHttp({ url: await server(restoredData) });
  const sourceReader = await connectNewerHttp({ url: sourceUrl });
  clients.push(reader, sourceReader);
  for (const id of [...new Set(acks.map((a) => a.id))]) {
    const versions = ackedBefore.filter((a) => a.id === id); // oldest first
    const got = await reader.callTool('object_get', { id });
    if (versions.length === 0) {
      expect(got.isError, `${id} was written only after the backup's end offset ${endOffset}, yet the restored store has it`).toBe(true);
      continue;
    }
    const last = versions.at(-1)!;
    expect(structured<{ attributes: { n: number } }>(got).attributes.n, `${id} as restored`).toBe(last.n);
    const historyOffsets: number[] = [];
    for (let cursor: string | undefined, page = 0; page === 0 || cursor !== undefined; page++) {
      const history = structured<{ versions: { offset: number }[]; next_cursor?: string }>(await reader.callTool('object_history', { id, ...(cursor ? { cursor } : {}) }));
      historyOffsets.push(...history.versions.map((v) => v.offset));
      cursor = history.next_cursor;
    }
    expect(historyOffsets, `${id}'s history`).toEqual(versions.map((v) => v.offset).reverse());
    const first = versions[0]!;
    const asOf = structured<{ attributes: { n: number } }>(await reader.callTool('object_get_as_of', { id, offset: first.offset }));
    expect(asOf.attributes.n, `${id} as of offset ${first.offset}`).toBe(first.n);
    const sourceAsOf = structured<{ attributes: { n: number } }>(await sourceReader.callTool('object_get_as_of', { id, offset: endOffset }));
    expect(sourceAsOf.attributes.n, `${id} on the source as of the backup's end offset`).toBe(last.n);
  }
  // The restored store goes on taking writes after its end offset.
  const next = structured<{ offset: number }>(await reader.callTool('object_put', { id: 'after-restore', type: 'note', attributes: {} }));
  expect(next.offset).toBeGreaterThan(endOffset);
}, 180_000);
