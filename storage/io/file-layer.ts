/**
 * The engine's only door to the disk. Taken as a parameter so tests can inject fdatasync
 * failures and ENOSPC exactly where a real disk would produce them.
 */
export interface FileHandleLike {
  readonly fd: number;
  /** Positional gather write of all buffers; resolves with bytes written. */
  writev(buffers: readonly Uint8Array[], position: number): Promise<number>;
  /**
   * The same write, done on the calling thread: the commitlog writes a batch (a copy into the
   * page cache, microseconds) and starts its fdatasync in the same tick, without a thread-pool
   * round trip between them. Throws what the write throws (ENOSPC); bytes written may be partial.
   */
  writevSync(buffers: readonly Uint8Array[], position: number): number;
  /** Cut the file back on the calling thread (after a failed writevSync, before the next write). */
  truncateSync(length: number): void;
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  datasync(): Promise<void>;
  /**
   * The same fdatasync, on the calling thread: no hand-off to the thread pool and back (each a
   * thread wake-up, ~50 us on this VM). It blocks the caller's thread while the disk works, so
   * the commitlog uses it only for a store that has nothing else to do meanwhile (inline-sync.ts).
   */
  datasyncSync(): void;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface FileLayer {
  open(path: string, flags: 'r' | 'r+' | 'w' | 'wx'): Promise<FileHandleLike>;
  readFile(path: string): Promise<Buffer>;
  /** Write a whole file durably: tmp + fsync + rename + directory fsync. */
  writeFileDurable(path: string, data: Uint8Array | readonly Uint8Array[]): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** A second name for an existing file; fails with EEXIST when `to` exists (never replaces it). */
  link(existing: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  mkdirp(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  exists(path: string): Promise<boolean>;
  /** fsync a directory so creates/renames/unlinks in it are durable. */
  fsyncDir(path: string): Promise<void>;
}
