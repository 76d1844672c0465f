/**
 * A FileLayer that reads the real disk and keeps every change in memory: the engine's own open
 * (LOCK, recovery cutting a torn tail, removing the checkpoint) and close (writing it) run on it
 * unchanged, and no file on disk changes. `store verify --read-only` opens a store through one.
 *
 * A file written, created or renamed lives in memory from then on (a file opened for writing is
 * copied in first: at most a segment); a removed one is hidden. Directories are the real ones
 * plus those made here.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { FileHandleLike, FileLayer } from './file-layer.js';
import { nodeFileLayer } from './node-file-layer.js';

interface OverlayFile {
  bytes: Buffer;
  length: number;
}

function errno(code: 'ENOENT' | 'EEXIST', op: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${op} '${file}' (in-memory overlay)`), { code });
}

function concat(data: Uint8Array | readonly Uint8Array[]): Buffer {
  return Buffer.concat(data instanceof Uint8Array ? [data] : [...data]);
}

class OverlayHandle implements FileHandleLike {
  /** No descriptor: nothing on this path stats an overlay file (only a live writer's active segment is). */
  readonly fd = -1;
  constructor(private readonly file: OverlayFile) {}

  writev(buffers: readonly Uint8Array[], position: number): Promise<number> {
    return Promise.resolve(this.writevSync(buffers, position));
  }
  writevSync(buffers: readonly Uint8Array[], position: number): number {
    let at = position;
    for (const b of buffers) {
      this.reserve(at + b.byteLength);
      this.file.bytes.set(b, at);
      at += b.byteLength;
    }
    this.file.length = Math.max(this.file.length, at);
    return at - position;
  }
  truncateSync(length: number): void {
    this.reserve(length);
    if (length > this.file.length) this.file.bytes.fill(0, this.file.length, length);
    this.file.length = length;
  }
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const n = Math.max(0, Math.min(length, this.file.length - position));
    buffer.set(this.file.bytes.subarray(position, position + n), offset);
    return Promise.resolve(n);
  }
  datasync(): Promise<void> {
    return Promise.resolve();
  }
  datasyncSync(): void {}
  truncate(length: number): Promise<void> {
    this.truncateSync(length);
    return Promise.resolve();
  }
  size(): Promise<number> {
    return Promise.resolve(this.file.length);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }

  private reserve(bytes: number): void {
    if (bytes <= this.file.bytes.length) return;
    const grown = Buffer.alloc(Math.max(bytes, this.file.bytes.length * 2));
    this.file.bytes.copy(grown, 0, 0, this.file.length);
    this.file.bytes = grown;
  }
}

export class OverlayFileLayer implements FileLayer {
  private readonly files = new Map<string, OverlayFile>();
  private readonly dirs = new Set<string>();
  /** Real paths removed here: hidden from every read. */
  private readonly removed = new Set<string>();

  async open(file: string, flags: 'r' | 'r+' | 'w' | 'wx'): Promise<FileHandleLike> {
    const key = path.resolve(file);
    if (flags === 'wx' && (await this.exists(key))) throw errno('EEXIST', 'open', file);
    if (flags === 'w' || flags === 'wx') return new OverlayHandle(this.put(key, Buffer.alloc(0)));
    const inMemory = this.files.get(key);
    if (inMemory) return new OverlayHandle(inMemory);
    if (this.removed.has(key)) throw errno('ENOENT', 'open', file);
    if (flags === 'r') return nodeFileLayer.open(key, 'r');
    return new OverlayHandle(this.put(key, await nodeFileLayer.readFile(key))); // copied in before its first write
  }
  async readFile(file: string): Promise<Buffer> {
    const key = path.resolve(file);
    const inMemory = this.files.get(key);
    if (inMemory) return Buffer.from(inMemory.bytes.subarray(0, inMemory.length));
    if (this.removed.has(key)) throw errno('ENOENT', 'open', file);
    return nodeFileLayer.readFile(key);
  }
  async writeFileDurable(file: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    this.put(path.resolve(file), concat(data));
  }
  async rename(from: string, to: string): Promise<void> {
    const source = path.resolve(from);
    const target = path.resolve(to);
    if (!(await this.exists(source))) throw errno('ENOENT', 'rename', from);
    if (!(await this.isDirectory(source))) {
      const bytes = await this.readFile(source);
      await this.hide(source);
      this.put(target, bytes);
      return;
    }
    // A directory: everything under it moves (real files are copied in).
    const under = await this.treeUnder(source);
    const moved: Array<[string, Buffer]> = [];
    for (const file of under.files) moved.push([path.join(target, path.relative(source, file)), await this.readFile(file)]);
    await this.rmdir(source);
    this.addDir(target);
    for (const d of under.dirs) this.addDir(path.join(target, path.relative(source, d)));
    for (const [file, bytes] of moved) this.put(file, bytes);
  }
  async link(existing: string, to: string): Promise<void> {
    const target = path.resolve(to);
    if (await this.exists(target)) throw errno('EEXIST', 'link', to);
    this.put(target, await this.readFile(existing));
  }
  async unlink(file: string): Promise<void> {
    const key = path.resolve(file);
    if (!(await this.exists(key)) || (await this.isDirectory(key))) throw errno('ENOENT', 'unlink', file);
    await this.hide(key);
  }
  async rmdir(dir: string): Promise<void> {
    const key = path.resolve(dir);
    if (!(await this.exists(key))) return; // force
    for (const name of await this.readdir(key)) {
      const entry = path.join(key, name);
      if (await this.isDirectory(entry)) await this.rmdir(entry);
      else await this.hide(entry);
    }
    this.dirs.delete(key);
    if (await nodeFileLayer.exists(key)) this.removed.add(key);
  }
  async mkdirp(dir: string): Promise<void> {
    for (let d = path.resolve(dir); !(await this.exists(d)); d = path.dirname(d)) this.addDir(d);
  }
  async readdir(dir: string): Promise<string[]> {
    const key = path.resolve(dir);
    if (!(await this.exists(key))) throw errno('ENOENT', 'scandir', dir);
    const names = new Set<string>();
    if (!this.removed.has(key)) {
      const real = await fsp.readdir(key).catch(() => [] as string[]);
      for (const name of real) if (!this.removed.has(path.join(key, name))) names.add(name);
    }
    for (const p of [...this.files.keys(), ...this.dirs]) if (path.dirname(p) === key) names.add(path.basename(p));
    return [...names];
  }
  async exists(file: string): Promise<boolean> {
    const key = path.resolve(file);
    if (this.files.has(key) || this.dirs.has(key)) return true;
    return !this.removed.has(key) && nodeFileLayer.exists(key);
  }
  async fsyncDir(dir: string): Promise<void> {
    if (!(await this.exists(dir))) throw errno('ENOENT', 'open', dir);
  }

  private put(key: string, bytes: Buffer): OverlayFile {
    const file = { bytes, length: bytes.length };
    this.files.set(key, file);
    this.removed.delete(key);
    return file;
  }

  private addDir(key: string): void {
    this.dirs.add(key);
    this.removed.delete(key);
  }

  private async hide(key: string): Promise<void> {
    this.files.delete(key);
    if (await nodeFileLayer.exists(key)) this.removed.add(key);
  }

  private async isDirectory(key: string): Promise<boolean> {
    if (this.dirs.has(key)) return true;
    if (this.files.has(key) || this.removed.has(key)) return false;
    return (await fsp.stat(key).catch(() => undefined))?.isDirectory() ?? false;
  }

  /** Every file and directory under `dir`, at any depth, as this layer sees them. */
  private async treeUnder(dir: string, found: { files: string[]; dirs: string[] } = { files: [], dirs: [] }): Promise<{ files: string[]; dirs: string[] }> {
    for (const name of await this.readdir(dir)) {
      const p = path.join(dir, name);
      if (await this.isDirectory(p)) {
        found.dirs.push(p);
        await this.treeUnder(p, found);
      } else {
        found.files.push(p);
      }
    }
    return found;
  }
}
