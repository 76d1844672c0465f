/**
 * The node file layer opens regular files only, and never waits on what stands in a file's place:
 * a FIFO (whose blocking open waits for the other end), a directory, a device. Each is refused
 * at once, naming what it is, and a regular file works as before.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { NotARegularFile } from '../../storage/io/file-refused.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';

const root = mkdtempSync(path.join(tmpdir(), 'ioboxx-node-layer-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** The rejection of `attempt`, or a failure if it has not settled after 3 s (it waited on a FIFO). */
async function refusal(attempt: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  const deadline = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('still waiting after 3 s')), 3_000).unref());
  const outcome = await Promise.race([attempt.then(() => undefined, (error: unknown) => error), deadline]);
  expect(outcome, 'it opened').toBeInstanceOf(Error);
  return outcome as NodeJS.ErrnoException;
}

test('a FIFO is refused by every open mode and by readFile, at once', async () => {
  const fifo = path.join(root, 'fifo');
  execFileSync('mkfifo', [fifo]);
  for (const flags of ['r', 'r+'] as const) {
    const error = await refusal(nodeFileLayer.open(fifo, flags));
    expect(error, flags).toBeInstanceOf(NotARegularFile);
    expect(error.message).toBe('fifo is a FIFO, not a regular file');
  }
  expect((await refusal(nodeFileLayer.open(fifo, 'w'))).code).toBe('ENXIO'); // no reader: the open says so rather than wait
  expect((await refusal(nodeFileLayer.open(fifo, 'wx'))).code).toBe('EEXIST');
  expect((await refusal(nodeFileLayer.readFile(fifo))).message).toBe('fifo is a FIFO, not a regular file');
});

test('a directory and a device are refused, naming what they are', async () => {
  const dir = path.join(root, 'dir');
  mkdirSync(dir);
  expect((await refusal(nodeFileLayer.open(dir, 'r'))).message).toBe('dir is a directory, not a regular file');
  expect((await refusal(nodeFileLayer.readFile(dir))).message).toBe('dir is a directory, not a regular file');
  expect((await refusal(nodeFileLayer.open(dir, 'r+'))).code).toBe('EISDIR');
  expect((await refusal(nodeFileLayer.open('/dev/null', 'r'))).message).toBe('null is a device, not a regular file');
});

test('a durable write whose temporary name is a FIFO fails at once and makes no file', async () => {
  const file = path.join(root, 'checkpoint.json');
  execFileSync('mkfifo', [`${file}.tmp`]);
  expect((await refusal(nodeFileLayer.writeFileDurable(file, Buffer.from('{}')))).code).toBe('ENXIO');
  expect(existsSync(file)).toBe(false);
  await nodeFileLayer.writeFileDurable(file, Buffer.from('{"a":1}')); // the failed write removed its temporary name
  expect(readFileSync(file, 'utf8')).toBe('{"a":1}');
});

test('regular files read, write and reopen as before', async () => {
  const file = path.join(root, 'data');
  const w = await nodeFileLayer.open(file, 'w');
  expect(await w.writev([Buffer.from('hello '), Buffer.from('world')], 0)).toBe(11);
  await w.datasync();
  await w.close();
  const rw = await nodeFileLayer.open(file, 'r+');
  rw.writevSync([Buffer.from('J')], 0);
  await rw.close();
  const r = await nodeFileLayer.open(file, 'r');
  const buf = Buffer.alloc(11);
  expect(await r.read(buf, 0, 11, 0)).toBe(11);
  expect(await r.size()).toBe(11);
  await r.close();
  expect(buf.toString()).toBe('Jello world');
  expect((await nodeFileLayer.readFile(file)).toString()).toBe('Jello world');
});
