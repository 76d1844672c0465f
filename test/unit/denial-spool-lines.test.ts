/**
 * The live denial spool's format (server/control/denial-spool-format.ts, live-denial-spool.ts): a
 * header line, then one line per batch. What a crash leaves (a torn last line) loads without it;
 * damage anywhere else sets the spool aside; every limit holds at both ends; version 1 spools
 * still load beside version 2 ones.
 */
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { denialSpoolDir, loadDenialSpools } from '../../server/control/denial-spool.js';
import {
  decodeDenialSpoolLines, denialSpoolBatchDenialsMax, denialSpoolDenialsMax, denialSpoolEntryBytesMax, denialSpoolHeaderLine,
  encodeDenialBatch, spoolableDenial,
} from '../../server/control/denial-spool-format.js';
import { LiveDenialSpool } from '../../server/control/live-denial-spool.js';
import type { ServerAuditEvent } from '../../storage/control/audit-staging.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import { writeWholeDenialSpool } from '../support/whole-denial-spool.js';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-spool-lines-'));
});
afterEach(() => rm(dataDir, { recursive: true, force: true }));

function denials(count: number, target: string): ServerAuditEvent[] {
  return Array.from({ length: count }, (_, i) => ({ tenant: i % 2 === 0 ? null : 'acme', atMs: 1_700_000_000_000 + i, subject: null, action: 'http', target: `${target}/${i}`, outcome: '401', reason: 'bad token' }));
}

/** A live spool of `batches`, closed as a crash would leave it (every batch synced). */
async function liveSpool(...batches: ServerAuditEvent[][]): Promise<string> {
  const live = await LiveDenialSpool.create(nodeFileLayer, dataDir);
  for (const batch of batches) expect(await live.append(batch, encodeDenialBatch(batch))).toBeUndefined();
  return (await live.close()).file;
}

const targets = (list: readonly ServerAuditEvent[]) => list.map((d) => d.target);

test('a live spool reads back every batch, in the order appended', async () => {
  const first = denials(3, '/first');
  const second = denials(2, '/second');
  const file = await liveSpool(first, second);
  expect(file.endsWith('.jsonl')).toBe(true);
  const loaded = await loadDenialSpools(dataDir);
  expect(loaded.setAside).toEqual([]);
  expect(loaded.spools).toHaveLength(1);
  expect(loaded.spools[0]!.denials).toEqual([...first, ...second]);
  expect(loaded.spools[0]!.bytes).toBe((await readFile(file)).length);
  expect({ files: loaded.files, bytes: loaded.bytes }).toEqual({ files: 1, bytes: loaded.spools[0]!.bytes });
});

test('a torn last line (a batch a crash cut short, never synced) is ignored: the batches before it load', async () => {
  const file = await liveSpool(denials(3, '/synced'));
  const torn = encodeDenialBatch(denials(4, '/torn'));
  await appendFile(file, torn.subarray(0, torn.length - 7));
  const loaded = await loadDenialSpools(dataDir);
  expect(loaded.setAside).toEqual([]);
  expect(targets(loaded.spools[0]!.denials)).toEqual(targets(denials(3, '/synced')));
});

test('a spool torn inside its header (a crash while it was made) holds no denial and loads', async () => {
  await mkdir(denialSpoolDir(dataDir), { recursive: true });
  await writeFile(path.join(denialSpoolDir(dataDir), '1700000000000-00000000-0000-4000-8000-000000000000.jsonl'), denialSpoolHeaderLine.subarray(0, 10));
  const loaded = await loadDenialSpools(dataDir);
  expect(loaded.setAside).toEqual([]);
  expect(loaded.spools.map((s) => s.denials.length)).toEqual([0]);
});

test('a damaged line before the last one sets the spool aside, named by line and byte offset; the other spools load', async () => {
  const damaged = await liveSpool(denials(1, '/a'));
  await appendFile(damaged, '[{"tenant":null,"atMs":1,"sub\n');
  await appendFile(damaged, encodeDenialBatch(denials(1, '/after')));
  const kept = await liveSpool(denials(2, '/kept'));
  const loaded = await loadDenialSpools(dataDir);
  const damagedAt = denialSpoolHeaderLine.length + encodeDenialBatch(denials(1, '/a')).length;
  expect(loaded.setAside).toEqual([{ file: damaged, movedTo: `${damaged}.damaged`, reason: expect.stringContaining(`line 3 (byte ${damagedAt})`) }]);
  expect(loaded.spools.map((s) => s.file)).toEqual([kept]);
  expect((await readdir(denialSpoolDir(dataDir))).sort()).toEqual([path.basename(damaged) + '.damaged', path.basename(kept)].sort());
});

test('a line that is not a batch of server audit events is damage, not data', () => {
  const header = denialSpoolHeaderLine.toString('utf8');
  expect(() => decodeDenialSpoolLines(Buffer.from(`${header}[]\n`))).toThrow('line 2 (byte');
  expect(() => decodeDenialSpoolLines(Buffer.from(`${header}[{"tenant":"../x","atMs":1,"subject":null,"action":"a","target":"t","outcome":"o"}]\n`))).toThrow('not a server audit event');
  expect(() => decodeDenialSpoolLines(Buffer.from('{"format":"ioboxx-denial-spool","version":1}\n'))).toThrow('version 2 header');
});

test('limits hold at both ends: denials per batch line, denials per spool, bytes per denial', () => {
  // Writing: a batch line holds at most denialSpoolBatchDenialsMax; a denial over denialSpoolEntryBytesMax is not spooled.
  expect(() => encodeDenialBatch(denials(denialSpoolBatchDenialsMax + 1, '/x'))).toThrow(`1..${denialSpoolBatchDenialsMax}`);
  const huge = spoolableDenial({ ...denials(1, '/x')[0]!, reason: 'r'.repeat(denialSpoolEntryBytesMax) });
  expect(huge).toBeInstanceOf(Error);
  expect((huge as Error).message).toContain('denialSpoolEntryBytesMax');
  expect(spoolableDenial({ ...denials(1, '/x')[0]!, tenant: 'bad tenant' })).toBeInstanceOf(Error);

  // Reading: a longer batch line, or more than denialSpoolDenialsMax denials in a file, is damage.
  const header = denialSpoolHeaderLine.toString('utf8');
  const tooLong = JSON.stringify(denials(denialSpoolBatchDenialsMax + 1, '/x'));
  expect(() => decodeDenialSpoolLines(Buffer.from(`${header}${tooLong}\n`))).toThrow(`1..${denialSpoolBatchDenialsMax}`);
  const fullLine = encodeDenialBatch(denials(denialSpoolBatchDenialsMax, '/x'));
  const lines = denialSpoolDenialsMax / denialSpoolBatchDenialsMax;
  const full = Buffer.concat([denialSpoolHeaderLine, ...Array.from({ length: lines }, () => fullLine)]);
  expect(decodeDenialSpoolLines(full)).toHaveLength(denialSpoolDenialsMax);
  expect(() => decodeDenialSpoolLines(Buffer.concat([full, encodeDenialBatch(denials(1, '/over'))]))).toThrow('denialSpoolDenialsMax');
}, 60_000);

test('version 1 spools (an earlier version\'s clean shutdown) load beside version 2 ones, oldest first', async () => {
  const whole = await writeWholeDenialSpool(dataDir, denials(2, '/v1'));
  await new Promise((resolve) => setTimeout(resolve, 2)); // spool names sort by their millisecond
  const lines = await liveSpool(denials(3, '/v2'));
  const loaded = await loadDenialSpools(dataDir);
  expect(loaded.setAside).toEqual([]);
  expect(loaded.spools.map((s) => [s.file, targets(s.denials)])).toEqual([[whole, targets(denials(2, '/v1'))], [lines, targets(denials(3, '/v2'))]]);
});
