/**
 * Where a server-level denial (a refusal before any tenant store is involved: its only record,
 * DESIGN invariant 7) waits until Postgres staging holds it.
 *
 * It is queued in memory and staged at once while Postgres answers (stage() is the control
 * worker's global job). One still queued denialSpoolSyncDelayMs after it came (Postgres away or
 * slow) is appended to the live spool with every other denial queued then: one write and one
 * fdatasync per batch (live-denial-spool.ts). So a crash (SIGKILL, OOM kill, power loss) loses at
 * most the denials of its last denialSpoolSyncDelayMs (and of a spool write in progress), plus
 * the one denial whose staging is in flight (bounded by the control plane's query timeout). The
 * next start stages the spools left behind (denial-spool.ts).
 *
 * Exactly once: each denial is staged by one path. A queued one is staged alone, taken out of the
 * queue while its staging runs (so no batch can spool it too; a failure puts it back); a spooled
 * one is staged with its spool, under the spool's own source numbered by place in the file, so
 * staging a spool again (a crash before its removal) adds nothing. The live spool is sealed
 * before it is staged, so later denials go to a new file and spool writes never wait on Postgres.
 */
import { stageServerAudit, stageServerAuditSpool, type ServerAuditEvent } from '../../storage/control/audit-staging.js';
import type { ControlPlane } from '../../storage/control/control-plane.js';
import type { FileLayer } from '../../storage/io/file-layer.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';
import type { Logger } from '../log.js';
import { denialSpoolBatchDenialsMax, denialSpoolDenialsMax, denialSpoolHeaderLine, encodeDenialBatch, spoolableDenial } from './denial-spool-format.js';
import { denialSpoolDirBytesMax, denialSpoolFilesMax, loadDenialSpools, removeDenialSpool, type DenialSpool, type LoadedDenialSpools } from './denial-spool.js';
import { LiveDenialSpool } from './live-denial-spool.js';

/** A denial not staged this long after it came is made durable in the live spool: what a crash can lose. */
export const denialSpoolSyncDelayMs = 250;
/**
 * Denials of this process held until staged (queued, or spooled and not yet staged); past it a
 * denial is lost, counted and logged. No more than one live spool holds (denialSpoolDenialsMax).
 */
export const pendingDenialsMax = denialSpoolDenialsMax;
/** After a spool write failed or found no room, the next try waits this long; the denials stay in memory meanwhile. */
export const denialSpoolRetryMs = 5_000;
/** Lost denials are logged at the first, then at most once per this, with their count. */
export const denialsLostLogIntervalMs = 10_000;

export interface ServerDenials {
  /** A server-level denial: staged soon, else spooled within denialSpoolSyncDelayMs. */
  add(event: ServerAuditEvent): void;
  /** Stages what waits, oldest first: earlier processes' spools, this one's spools, then the queue. Not run twice at once. */
  stage(control: ControlPlane): Promise<void>;
  /** At shutdown, once stage() no longer runs: spools what is still queued, and closes the live spool (kept for the next start). */
  close(): Promise<void>;
}

interface WaitingSpool {
  readonly spool: DenialSpool;
  /** Written by this process (its denials count in pendingDenialsMax), or left by an earlier one. */
  readonly own: boolean;
}

export async function startServerDenials(input: {
  readonly dataDir: string;
  readonly log: Logger;
  /** Called when stage() has work: a denial queued, a batch spooled. */
  readonly nudge: () => void;
  /** The disk (tests give one that fails). */
  readonly fl?: FileLayer;
  /** Denials lost (also logged, at most every denialsLostLogIntervalMs): for the operator's metrics. */
  readonly onLost?: (count: number) => void;
}): Promise<ServerDenials> {
  const { dataDir, log, nudge } = input;
  const fl = input.fl ?? nodeFileLayer;
  const loaded = await loadEarlierSpools(dataDir, fl, log);
  /** Spools to stage, oldest first: those left by earlier processes, then this one's sealed ones. */
  const waiting: WaitingSpool[] = loaded.spools.map((spool) => ({ spool, own: false }));
  /** What denialSpoolFilesMax and denialSpoolDirBytesMax count: the spool files in the directory. */
  let spoolFiles = loaded.files;
  let spoolBytes = loaded.bytes;
  /** Denials in memory only, oldest first. */
  const queued: ServerAuditEvent[] = [];
  let live: LiveDenialSpool | undefined;
  /** This process's denials not yet staged (queued, being written, or in a spool). */
  let held = 0;
  let flushTimer: NodeJS.Timeout | undefined;
  /** After a failed or refused spool write: no write before this. */
  let spoolRetryAtMs = 0;
  let spoolFailing = false;
  let closed = false;
  let lostTotal = 0;
  let lostUnlogged = 0;
  let lostLoggedAtMs = Number.NEGATIVE_INFINITY;

  // The live spool's writes, sealing and closing run one at a time, never waiting on Postgres.
  let fileWork: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(work: () => Promise<T>): Promise<T> => {
    const run = fileWork.then(work);
    fileWork = run.catch(() => undefined);
    return run;
  };

  const lose = (count: number, why: string): void => {
    input.onLost?.(count);
    lostTotal += count;
    lostUnlogged += count;
    if (Date.now() - lostLoggedAtMs < denialsLostLogIntervalMs) return;
    logLost(why);
  };
  const logLost = (why: string): void => {
    log.error({ lost: lostUnlogged, lostTotal, why }, 'server audit denials lost: neither staged nor spooled');
    lostUnlogged = 0;
    lostLoggedAtMs = Date.now();
  };

  const armFlush = (delayMs: number): void => {
    flushTimer ??= setTimeout(() => {
      flushTimer = undefined;
      void inTurn(() => flush(false));
    }, delayMs);
    flushTimer.unref();
  };

  /** This process's spool sealed: staged as it is, later batches go to a new file. In turn. */
  const seal = async (): Promise<void> => {
    if (!live) return;
    const spool = await live.close();
    live = undefined;
    waiting.push({ spool, own: true });
  };

  /** A live spool with room for `lineBytes` more: this one, or a new one. Undefined when the limits leave no room. In turn. */
  const liveWithRoom = async (lineBytes: number): Promise<LiveDenialSpool | undefined> => {
    if (live && !live.writable) await seal();
    const headerBytes = live ? 0 : denialSpoolHeaderLine.length;
    if (spoolBytes + headerBytes + lineBytes > denialSpoolDirBytesMax) return undefined;
    if (live) return live;
    if (spoolFiles >= denialSpoolFilesMax) return undefined;
    live = await LiveDenialSpool.create(fl, dataDir);
    spoolFiles++;
    spoolBytes += live.bytes;
    return live;
  };

  const spoolNotWritten = (fields: Record<string, unknown>, message: string): void => {
    spoolRetryAtMs = Date.now() + denialSpoolRetryMs;
    armFlush(denialSpoolRetryMs);
    if (spoolFailing) return;
    spoolFailing = true;
    log.error({ ...fields, queued: queued.length, retryInMs: denialSpoolRetryMs }, message);
  };

  /** Every queued denial into the live spool, in batches. In turn. `now`: at shutdown, even while retries wait. */
  const flush = async (now: boolean): Promise<void> => {
    if (queued.length === 0) return;
    if (!now && Date.now() < spoolRetryAtMs) return armFlush(spoolRetryAtMs - Date.now());
    while (queued.length > 0) {
      // Out of the queue before the first await: stage() takes queued denials meanwhile, never these.
      const batch = queued.splice(0, denialSpoolBatchDenialsMax);
      const line = encodeDenialBatch(batch);
      let failure: Error | undefined;
      try {
        const spool = await liveWithRoom(line.length);
        if (!spool) {
          queued.unshift(...batch);
          return spoolNotWritten({ spoolFiles, spoolBytes, filesMax: denialSpoolFilesMax, bytesMax: denialSpoolDirBytesMax },
            'server audit denial spool full (denialSpoolFilesMax or denialSpoolDirBytesMax): denials stay in memory until Postgres answers; a crash loses them');
        }
        failure = await spool.append(batch, line);
        spoolBytes += line.length;
      } catch (error) {
        queued.unshift(...batch);
        if (live && !live.writable) await seal();
        return spoolNotWritten({ err: (error as Error).message }, 'server audit denials could not be spooled (disk full?): they stay in memory until Postgres answers; a crash loses them');
      }
      if (failure) {
        log.error({ spool: live?.file, err: failure.message }, 'server audit denial spool not synced: sealed (a failed fdatasync is not retried); its denials are staged from memory, a crash before that may lose them');
        await seal();
      }
    }
    if (spoolFailing) log.info('server audit denials spooled again');
    spoolFailing = false;
    nudge();
  };

  const stageWaiting = async (control: ControlPlane): Promise<void> => {
    while (waiting.length > 0) {
      const { spool, own } = waiting[0]!;
      const staged = await stageServerAuditSpool(control, spool.id, spool.denials);
      try {
        await removeDenialSpool(spool, fl);
        spoolFiles--;
        spoolBytes -= spool.bytes;
      } catch (error) {
        // Staging a spool again is a no-op: one that cannot be removed costs a re-read, no duplicate.
        log.warn({ spool: spool.file, err: (error as Error).message }, 'staged denial spool could not be removed; the next start stages it again as a no-op');
      }
      waiting.shift();
      if (own) held -= spool.denials.length;
      log.info({ spool: spool.file, denials: spool.denials.length, staged }, own ? 'server audit denials spooled while the control plane was slow or away: staged' : 'server audit denials spooled by an earlier process: staged');
    }
  };

  return {
    add(event) {
      const denial = spoolableDenial(event);
      if (denial instanceof Error) return lose(1, denial.message);
      if (closed) return lose(1, 'came after the shutdown of the control runtime');
      if (held >= pendingDenialsMax) return lose(1, `${held} denials held, pendingDenialsMax`);
      queued.push(denial);
      held++;
      armFlush(denialSpoolSyncDelayMs);
      nudge();
    },

    async stage(control) {
      await stageWaiting(control);
      // Nothing older waits: the live spool's turn (sealed in turn, after any write in progress).
      if (live && live.denials.length > 0) {
        await inTurn(seal);
        await stageWaiting(control);
      }
      while (queued.length > 0) {
        const denial = queued.shift()!;
        try {
          await stageServerAudit(control, denial);
        } catch (error) {
          // Back in the queue, and spooled soon unless a retry stages it first.
          queued.unshift(denial);
          armFlush(denialSpoolSyncDelayMs);
          throw error;
        }
        held--;
      }
    },

    async close() {
      closed = true;
      await inTurn(() => flush(true));
      // Nothing is spooled after this (a failed flush armed a retry).
      clearTimeout(flushTimer);
      await inTurn(seal);
      if (queued.length > 0) lose(queued.splice(0).length, 'not staged at shutdown (control plane away) and not spooled');
      if (lostUnlogged > 0) logLost('at shutdown');
      const spooled = waiting.filter((w) => w.own).reduce((n, w) => n + w.spool.denials.length, 0);
      if (spooled > 0) log.warn({ denials: spooled }, 'server audit denials not staged at shutdown (control plane away): spooled, staged after the next start');
    },
  };
}

/** The spools of earlier processes; a damaged one is set aside and logged, never a reason not to start. */
async function loadEarlierSpools(dataDir: string, fl: FileLayer, log: Logger): Promise<LoadedDenialSpools> {
  try {
    const loaded = await loadDenialSpools(dataDir, fl);
    for (const aside of loaded.setAside) {
      log.error({ spool: aside.file, movedTo: aside.movedTo, reason: aside.reason }, 'server audit denial spool unreadable: set aside, its denials are not staged');
    }
    if (loaded.deferred > 0) log.warn({ deferred: loaded.deferred }, 'more denial spools than one start loads: the rest are staged at the next start');
    if (loaded.spools.length > 0) {
      log.info({ spools: loaded.spools.length, denials: loaded.spools.reduce((n, s) => n + s.denials.length, 0) }, 'server audit denial spools of an earlier process loaded: staged once the control plane answers');
    }
    return loaded;
  } catch (error) {
    log.error({ err: (error as Error).message }, 'server audit denial spools could not be listed: left where they are');
    return { spools: [], setAside: [], deferred: 0, files: 0, bytes: 0 };
  }
}
