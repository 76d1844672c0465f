/**
 * The live spool: the file this process appends server-level denials to while they cannot be
 * staged promptly (server-denials.ts), `${dataDir}/audit-spool/<ms>-<uuid>.jsonl` in the lines
 * format (denial-spool-format.ts). Each batch is one line, written with one write and made
 * durable with one fdatasync; the file's name is durable (directory fsync) before the first batch.
 *
 * The denials it holds are kept in memory too, in file order, so staging it never reads it back:
 * its file and `denials` list the same denials in the same order, which numbers them when staged.
 * After a failed write or sync nothing more is appended (the tail may be torn, and a failed
 * fdatasync is never retried): the spool is sealed and staged with what it holds.
 */
import { randomUUID } from 'node:crypto';
import * as path from 'node:path';
import type { ServerAuditEvent } from '../../storage/control/audit-staging.js';
import { mkdirDurable } from '../../storage/io/durable-dir.js';
import type { FileHandleLike, FileLayer } from '../../storage/io/file-layer.js';
import { denialSpoolHeaderLine, denialSpoolLineBytesMax } from './denial-spool-format.js';
import { denialSpoolDir, denialSpoolLinesSuffix, type DenialSpool } from './denial-spool.js';

export class LiveDenialSpool {
  /** The denials whose batch lines were written, in file order. */
  private readonly written: ServerAuditEvent[] = [];
  /** False after a failed write or sync: the file takes no more batches. */
  private open = true;

  private constructor(
    private readonly handle: FileHandleLike,
    readonly id: string,
    readonly file: string,
    private size: number,
  ) {}

  /** A new, empty live spool (its header and its name durable); throws, leaving no file, when it cannot be made. */
  static async create(fl: FileLayer, dataDir: string): Promise<LiveDenialSpool> {
    const dir = denialSpoolDir(dataDir);
    await mkdirDurable(fl, dir, dataDir);
    const id = `${Date.now()}-${randomUUID()}`;
    const file = path.join(dir, `${id}${denialSpoolLinesSuffix}`);
    const handle = await fl.open(file, 'wx');
    try {
      await handle.writev([denialSpoolHeaderLine], 0);
      await handle.datasync();
      await fl.fsyncDir(dir);
    } catch (error) {
      await handle.close().catch(() => undefined);
      await fl.unlink(file).catch(() => undefined);
      throw error;
    }
    return new LiveDenialSpool(handle, id, file, denialSpoolHeaderLine.length);
  }

  get bytes(): number {
    return this.size;
  }

  get denials(): readonly ServerAuditEvent[] {
    return this.written;
  }

  get writable(): boolean {
    return this.open;
  }

  /**
   * Appends `batch` as `line` (encodeDenialBatch(batch)), then fdatasync. Throws when the line
   * was not written: the batch is not in the spool. A failed sync returns its error: the line was
   * written, so the batch is in the spool's list (and its file, unless a crash comes first).
   * Either failure closes the spool to further batches.
   */
  async append(batch: readonly ServerAuditEvent[], line: Buffer): Promise<Error | undefined> {
    if (!this.open) throw new Error(`live denial spool ${this.file} takes no more batches`);
    if (batch.length === 0 || line.length > denialSpoolLineBytesMax || line[line.length - 1] !== 0x0a) {
      throw new Error(`a batch line of 1..${denialSpoolLineBytesMax} bytes ending in a newline (got ${batch.length} denials in ${line.length} bytes)`);
    }
    try {
      await this.handle.writev([line], this.size);
    } catch (error) {
      this.open = false;
      // Cut back what part of the line landed; if that fails too, the reader ignores it as a torn tail.
      await this.handle.truncate(this.size).catch(() => undefined);
      throw error;
    }
    this.size += line.length;
    this.written.push(...batch);
    try {
      await this.handle.datasync();
      return undefined;
    } catch (error) {
      this.open = false;
      return error as Error;
    }
  }

  /**
   * Closes the file (it stays for staging, or for the next start); what it holds, as a spool to
   * stage (an empty one too: staging it stages nothing and removes it). A failed close loses
   * nothing: every batch was synced, or its failure already closed the spool.
   */
  async close(): Promise<DenialSpool> {
    this.open = false;
    await this.handle.close().catch(() => undefined);
    return { id: this.id, file: this.file, denials: this.written, bytes: this.size };
  }
}
