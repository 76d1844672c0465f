/** The real disk, through node:fs. */
import { promises as fsp, constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FileHandleLike, FileLayer } from './file-layer.js';
import { assertRegularFile } from './file-refused.js';

/**
 * The open flags of each mode, all with O_NONBLOCK: it has no effect on a regular file's reads
 * and writes, and keeps the open of a FIFO from waiting for the other end (O_RDWR never waits).
 */
const openFlags = {
  r: fsConstants.O_RDONLY | fsConstants.O_NONBLOCK,
  'r+': fsConstants.O_RDWR | fsConstants.O_NONBLOCK,
  w: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_TRUNC | fsConstants.O_NONBLOCK,
  wx: fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NONBLOCK,
} as const;

function writevAt(fd: number, buffers: readonly Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.writev(fd, buffers as Uint8Array[], position, (error, written) => (error ? reject(error) : resolve(written)));
  });
}

/** writev may write less than asked (rarely); keep going from where it stopped. */
async function writevAll(fd: number, buffers: readonly Uint8Array[], position: number): Promise<number> {
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  let written = await writevAt(fd, buffers, position);
  while (written < total) {
    const n = await writevAt(fd, remainingAfter(buffers, written), position + written);
    if (n === 0) throw Object.assign(new Error('writev wrote 0 bytes'), { code: 'EIO' });
    written += n;
  }
  return written;
}

/** The buffers' bytes after the first `skip`. */
function remainingAfter(buffers: readonly Uint8Array[], skip: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  for (const b of buffers) {
    if (skip >= b.byteLength) {
      skip -= b.byteLength;
      continue;
    }
    rest.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return rest;
}

/** writevSync may also write less than asked: the same loop, on the calling thread. */
function writevAllSync(fd: number, buffers: readonly Uint8Array[], position: number): number {
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  let written = fs.writevSync(fd, buffers as Uint8Array[], position);
  while (written < total) {
    const n = fs.writevSync(fd, remainingAfter(buffers, written), position + written);
    if (n === 0) throw Object.assign(new Error('writev wrote 0 bytes'), { code: 'EIO' });
    written += n;
  }
  return written;
}

/**
 * Never waits on what stands in a file's place (openFlags), and an existing file opens to read
 * only if it is a regular one: a directory, FIFO, device or socket is refused (NotARegularFile,
 * or the open's own EISDIR or ENXIO) before anything reads it. (A write opens what it is given:
 * the tests' full disk is a link to /dev/full.)
 */
async function openRegular(file: string, flags: keyof typeof openFlags): Promise<fsp.FileHandle> {
  const handle = await fsp.open(file, openFlags[flags], 0o600);
  try {
    if (flags === 'r' || flags === 'r+') assertRegularFile(file, fs.fstatSync(handle.fd));
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}

class NodeFileHandle implements FileHandleLike {
  constructor(private readonly handle: fsp.FileHandle) {}
  get fd(): number {
    return this.handle.fd;
  }
  writev(buffers: readonly Uint8Array[], position: number): Promise<number> {
    return writevAll(this.handle.fd, buffers, position);
  }
  writevSync(buffers: readonly Uint8Array[], position: number): number {
    return writevAllSync(this.handle.fd, buffers, position);
  }
  truncateSync(length: number): void {
    fs.ftruncateSync(this.handle.fd, length);
  }
  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buffer, offset, length, position);
    return bytesRead;
  }
  /**
   * fdatasync on the thread pool through the callback API: handing it to the pool cost the main
   * thread ~2-7 us less than FileHandle.datasync (30 alternated rounds of 200 syncs, three runs:
   * 50-55 us against 48-51 us each, on this VM where a wake-up of a pool thread is most of it).
   * The commitlog pays it once per batch.
   */
  datasync(): Promise<void> {
    return new Promise((resolve, reject) => {
      fs.fdatasync(this.handle.fd, (error) => (error ? reject(error) : resolve()));
    });
  }
  datasyncSync(): void {
    fs.fdatasyncSync(this.handle.fd);
  }
  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }
  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }
  close(): Promise<void> {
    return this.handle.close();
  }
}

/** Where writeFileDurable writes `file` before renaming it into place. */
export function durableWriteTmpFile(file: string): string {
  return `${file}.tmp`;
}

export class NodeFileLayer implements FileLayer {
  async open(file: string, flags: 'r' | 'r+' | 'w' | 'wx'): Promise<FileHandleLike> {
    return new NodeFileHandle(await openRegular(file, flags));
  }
  async readFile(file: string): Promise<Buffer> {
    const handle = await openRegular(file, 'r');
    try {
      return await handle.readFile();
    } finally {
      await handle.close();
    }
  }
  async writeFileDurable(file: string, data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    const tmp = durableWriteTmpFile(file);
    try {
      const handle = await openRegular(tmp, 'w');
      try {
        const parts = data instanceof Uint8Array ? [data] : data;
        await writevAll(handle.fd, parts, 0);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fsp.rename(tmp, file);
    } catch (error) {
      // A half-written tmp file would hold the space a full disk is short of (and is never read).
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw error;
    }
    await this.fsyncDir(path.dirname(file));
  }
  rename(from: string, to: string): Promise<void> {
    return fsp.rename(from, to);
  }
  link(existing: string, to: string): Promise<void> {
    return fsp.link(existing, to);
  }
  unlink(file: string): Promise<void> {
    return fsp.unlink(file);
  }
  rmdir(dir: string): Promise<void> {
    return fsp.rm(dir, { recursive: true, force: true });
  }
  async mkdirp(dir: string): Promise<void> {
    try {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      // A recursive mkdir reports a read-only or full filesystem (EROFS, ENOSPC, EACCES) as
      // ENOENT: one level at a time says which it was.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await mkdirEachLevel(path.resolve(dir));
    }
  }
  readdir(dir: string): Promise<string[]> {
    return fsp.readdir(dir);
  }
  async exists(file: string): Promise<boolean> {
    try {
      await fsp.access(file, fsConstants.F_OK);
      return true;
    } catch (error) {
      // Only "not there" is false: a directory we may not read must not look like an empty store.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }
  async fsyncDir(dir: string): Promise<void> {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

export const nodeFileLayer = new NodeFileLayer();

/** Creates `dir` and its missing parents one level at a time, so a failure carries its real errno. */
async function mkdirEachLevel(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let at = dir; ; at = path.dirname(at)) {
    if (await fsp.stat(at).then(() => true, () => false)) break;
    missing.unshift(at);
    if (path.dirname(at) === at) break;
  }
  for (const level of missing) {
    await fsp.mkdir(level, { mode: 0o700 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
}
