/**
 * The bytes of a denial spool file (denial-spool.ts), in one of two formats told apart by the
 * file's name:
 *
 * - version 1, `<id>.json`: one JSON object `{"format", "version": 1, "denials": [...]}`, written
 *   whole at a clean shutdown by earlier versions of the server. Read only: nothing writes it now.
 * - version 2, `<id>.jsonl` (the live spool, live-denial-spool.ts): a header line
 *   `{"format":"ioboxx-denial-spool","version":2}`, then one line per appended batch, each a JSON
 *   array of denials, written with one write and one fdatasync. A batch is one line so that a
 *   write cut short (a crash, a full disk) leaves only a last line with no newline: a torn tail,
 *   ignored, since nothing in it was synced. A complete line that does not parse is damage.
 *
 * A denial's place in the file (across lines) numbers it when it is staged: serverAuditSpoolSource.
 */
import { auditTenantPattern } from '../../storage/control/control-plane.js';
import type { ServerAuditEvent } from '../../storage/control/audit-staging.js';

export const denialSpoolFormat = 'ioboxx-denial-spool';
/** The whole-file format of earlier versions (read only). */
export const denialSpoolWholeVersion = 1;
/** The line format of the live spool. */
export const denialSpoolLinesVersion = 2;
/** Denials one spool file holds at most. */
export const denialSpoolDenialsMax = 100_000;
/** Bytes of one spooled denial at most (its text fields are clipped to 1024 characters, JSON-escaped). */
export const denialSpoolEntryBytesMax = 32 * 1024;
/** Denials in one batch line: a line is parsed whole, so it stays a few MiB at most. */
export const denialSpoolBatchDenialsMax = 1_000;
/** One batch line's bytes at most, its brackets, commas and newline included. */
export const denialSpoolLineBytesMax = denialSpoolBatchDenialsMax * (denialSpoolEntryBytesMax + 1) + 2;
/** The header line's bytes at most (it is the fixed line denialSpoolHeaderLine). */
const denialSpoolHeaderBytesMax = 1024;
/** A spool file larger than this is damage, not data: set aside before reading it. */
export const denialSpoolBytesMax = denialSpoolDenialsMax * denialSpoolEntryBytesMax + denialSpoolHeaderBytesMax;

/** The first line of a version 2 spool. */
export const denialSpoolHeaderLine = Buffer.from(`${JSON.stringify({ format: denialSpoolFormat, version: denialSpoolLinesVersion })}\n`, 'utf8');

const newline = 0x0a;

/**
 * The denial as a spool holds it (only its own fields), or an Error saying why it cannot be
 * spooled: not a server audit event, or over denialSpoolEntryBytesMax. Checked when a denial is
 * queued, so nothing is written that would not read back.
 */
export function spoolableDenial(event: ServerAuditEvent): ServerAuditEvent | Error {
  try {
    const denial = checkedDenial(event, 0);
    const bytes = Buffer.byteLength(JSON.stringify(denial), 'utf8');
    if (bytes > denialSpoolEntryBytesMax) return new Error(`a denial of ${bytes} bytes, over ${denialSpoolEntryBytesMax} (denialSpoolEntryBytesMax)`);
    return denial;
  } catch (error) {
    return error as Error;
  }
}

/** One batch as its line (newline included). The batch's denials come from spoolableDenial. */
export function encodeDenialBatch(batch: readonly ServerAuditEvent[]): Buffer {
  if (batch.length === 0 || batch.length > denialSpoolBatchDenialsMax) {
    throw new Error(`a batch line holds 1..${denialSpoolBatchDenialsMax} denials (got ${batch.length})`);
  }
  const line = Buffer.from(`${JSON.stringify(batch)}\n`, 'utf8');
  if (line.length > denialSpoolLineBytesMax) throw new Error(`a batch line of ${line.length} bytes, over ${denialSpoolLineBytesMax}`);
  return line;
}

/** The denials of a version 1 file; throws, saying why, when it is not one. */
export function decodeDenialSpoolWhole(bytes: Buffer): ServerAuditEvent[] {
  const parsed: unknown = JSON.parse(bytes.toString('utf8'));
  const spool = parsed as { format?: unknown; version?: unknown; denials?: unknown };
  if (typeof parsed !== 'object' || parsed === null || spool.format !== denialSpoolFormat || spool.version !== denialSpoolWholeVersion) {
    throw new Error(`not a ${denialSpoolFormat} version ${denialSpoolWholeVersion} file`);
  }
  if (!Array.isArray(spool.denials) || spool.denials.length === 0 || spool.denials.length > denialSpoolDenialsMax) {
    throw new Error(`denials must be a list of 1..${denialSpoolDenialsMax}`);
  }
  return spool.denials.map((denial, index) => checkedDenial(denial, index));
}

/**
 * The denials of a version 2 file, in file order. Bytes after the last newline are a torn tail
 * (a write a crash cut short, never synced): ignored, so a file torn inside its header holds no
 * denial. A complete line that is not what it should be throws, naming its line and byte offset.
 */
export function decodeDenialSpoolLines(bytes: Buffer): ServerAuditEvent[] {
  const end = bytes.lastIndexOf(newline) + 1;
  const denials: ServerAuditEvent[] = [];
  for (let start = 0, lineNumber = 1; start < end; lineNumber++) {
    const stop = bytes.indexOf(newline, start);
    const where = `line ${lineNumber} (byte ${start})`;
    const length = stop + 1 - start;
    if (length > (lineNumber === 1 ? denialSpoolHeaderBytesMax : denialSpoolLineBytesMax)) throw new Error(`${where} has ${length} bytes, over its limit`);
    const parsed = parseLine(bytes.subarray(start, stop), where);
    if (lineNumber === 1) {
      const header = parsed as { format?: unknown; version?: unknown };
      if (header?.format !== denialSpoolFormat || header.version !== denialSpoolLinesVersion) {
        throw new Error(`${where}: not a ${denialSpoolFormat} version ${denialSpoolLinesVersion} header`);
      }
    } else {
      if (!Array.isArray(parsed) || parsed.length === 0 || parsed.length > denialSpoolBatchDenialsMax) {
        throw new Error(`${where}: a batch must be a list of 1..${denialSpoolBatchDenialsMax} denials`);
      }
      if (denials.length + parsed.length > denialSpoolDenialsMax) throw new Error(`${where}: more than ${denialSpoolDenialsMax} denials (denialSpoolDenialsMax)`);
      for (const denial of parsed) denials.push(checkedDenial(denial, denials.length));
    }
    start = stop + 1;
  }
  return denials;
}

function parseLine(line: Buffer, where: string): unknown {
  try {
    return JSON.parse(line.toString('utf8'));
  } catch (error) {
    throw new Error(`${where}: ${(error as Error).message}`);
  }
}

function checkedDenial(value: unknown, index: number): ServerAuditEvent {
  const d = value as Record<string, unknown>;
  const ok = typeof value === 'object' && value !== null
    && (d.tenant === null || (typeof d.tenant === 'string' && auditTenantPattern.test(d.tenant)))
    && Number.isSafeInteger(d.atMs)
    && (d.subject === null || typeof d.subject === 'string')
    && typeof d.action === 'string' && typeof d.target === 'string' && typeof d.outcome === 'string'
    && (d.reason === undefined || typeof d.reason === 'string');
  if (!ok) throw new Error(`denial ${index} is not a server audit event`);
  return {
    tenant: d.tenant as string | null, atMs: d.atMs as number, subject: d.subject as string | null,
    action: d.action as string, target: d.target as string, outcome: d.outcome as string,
    ...(d.reason === undefined ? {} : { reason: d.reason as string }),
  };
}
