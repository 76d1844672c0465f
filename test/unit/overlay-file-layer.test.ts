/**
 * The overlay file layer (store verify --read-only): every change is seen through it and none
 * reaches the disk.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { OverlayFileLayer } from '../../storage/io/overlay-file-layer.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A real tree: a/x, a/b/y. */
function tree(): string {
  const root = mkdtempSync(path.join(tmpdir(), 'ioboxx-overlay-'));
  dirs.push(root);
  mkdirSync(path.join(root, 'a', 'b'), { recursive: true });
  writeFileSync(path.join(root, 'a', 'x'), 'x');
  writeFileSync(path.join(root, 'a', 'b', 'y'), 'y');
  return root;
}

function diskOf(root: string): string[] {
  return readdirSync(root, { recursive: true }).map(String).sort();
}

test('writes, renames, links and removals are seen through the overlay and never reach the disk', async () => {
  const root = tree();
  const disk = diskOf(root);
  const fl = new OverlayFileLayer();

  const handle = await fl.open(path.join(root, 'a', 'x'), 'r+');
  await handle.writev([Buffer.from('yz')], 1);
  await handle.close();
  expect((await fl.readFile(path.join(root, 'a', 'x'))).toString()).toBe('xyz');
  expect(readFileSync(path.join(root, 'a', 'x'), 'utf8')).toBe('x');

  await fl.rename(path.join(root, 'a'), path.join(root, 'c'));
  expect(await fl.exists(path.join(root, 'a'))).toBe(false);
  expect((await fl.readdir(root)).sort()).toEqual(['c']);
  expect((await fl.readFile(path.join(root, 'c', 'b', 'y'))).toString()).toBe('y');
  expect((await fl.readFile(path.join(root, 'c', 'x'))).toString()).toBe('xyz');

  await expect(fl.link(path.join(root, 'c', 'x'), path.join(root, 'c', 'b', 'y'))).rejects.toMatchObject({ code: 'EEXIST' });
  await fl.unlink(path.join(root, 'c', 'x'));
  expect(await fl.readdir(path.join(root, 'c'))).toEqual(['b']);

  await fl.rmdir(path.join(root, 'c'));
  await fl.mkdirp(path.join(root, 'a', 'b'));
  expect(await fl.readdir(path.join(root, 'a'))).toEqual(['b']);
  expect(await fl.readdir(path.join(root, 'a', 'b'))).toEqual([]); // the real y stays hidden
  await fl.writeFileDurable(path.join(root, 'a', 'b', 'z'), Buffer.from('z'));
  expect(await fl.readdir(path.join(root, 'a', 'b'))).toEqual(['z']);
  await expect(fl.readFile(path.join(root, 'a', 'x'))).rejects.toMatchObject({ code: 'ENOENT' });

  expect(diskOf(root)).toEqual(disk);
});
