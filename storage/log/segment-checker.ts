/**
 * Checks segments (scanSegmentBytes: frame bounds, CRC32C, contiguous offsets) on a second
 * thread while the main thread applies the frames already checked: replay's CRC work (about a
 * fifth of it) leaves the main thread, which is replay's critical path. Segments are checked one
 * after another in the order asked; each one's good frames are handed to its `onFrames` in
 * batches, in order, as the worker finds them, then its verdict settles the promise.
 *
 * The same checks run in this thread when there is no worker: when asked, until the worker says
 * it is ready, when the buffer is not shared memory, or when the worker fails to start or dies.
 * A segment the worker left half-checked is checked again here from the start; frames already
 * handed on are not handed on twice. Checked here, frames are handed on in batches with a turn
 * of the event loop between them, so reads of the next segments go on meanwhile.
 */
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../io/module-worker.js';
import { LoopSlices } from '../io/event-loop.js';
import { scanSegmentBytesInSlices, type Damage } from './recovery.js';

/** Frames per batch the worker posts: ~32 KiB of positions, a few hundred messages per million frames. */
export const checkBatchFrames = 4096;

const workerUrl = new URL(`./frame-check-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** To the worker: a segment's bytes in shared memory. */
export interface CheckRequest {
  readonly memory: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly length: number;
  readonly file: string;
  readonly firstOffset: number;
  readonly batchFrames: number;
}

export interface SegmentVerdict {
  /** Bytes of valid content (header + good frames). */
  readonly end: number;
  readonly frames: number;
  readonly problem?: Damage;
  readonly headerBad?: string;
  readonly zeroTail?: true;
}

/** From the worker: it is ready for checks; positions of the next good frames of the segment being checked; its verdict. */
export type CheckMessage =
  | { readonly kind: 'ready' }
  | { readonly kind: 'frames'; readonly positions: Float64Array }
  | ({ readonly kind: 'done' } & SegmentVerdict);

/**
 * Receives a segment's good frames (positions, in order, in batches), then its verdict, each
 * synchronously as the checker learns them, so a verdict is handled before any frame of the next
 * segment. A throw from either fails that segment's check with that error.
 */
export interface CheckHandlers {
  frames(positions: ArrayLike<number>): void;
  verdict(verdict: SegmentVerdict): void;
}

interface PendingCheck {
  readonly buf: Buffer;
  readonly file: string;
  readonly firstOffset: number;
  readonly handlers: CheckHandlers;
  /** Given to the worker; its answers wait in `inbox` until this check is first in line. */
  posted: boolean;
  /** The worker's verdict for it arrived (later answers belong to the next check posted). */
  answered: boolean;
  readonly inbox: CheckMessage[];
  /** Frames handed to the handlers so far. */
  handed: number;
  failure?: unknown;
  resolve(): void;
  reject(error: unknown): void;
}

export class SegmentChecker {
  private worker: Worker | undefined;
  /** The worker said it is ready. Until then checks run here: a worker takes tens of ms to start (from TypeScript sources, seconds on a busy machine). */
  private ready = false;
  /** Checks not yet settled, in the order asked; settled in that order. */
  private readonly queue: PendingCheck[] = [];
  /** The check running in this thread, if any (always the first in line). */
  private runningHere: PendingCheck | undefined;
  /** A turn of the event loop is booked to hand on more of the worker's answers. */
  private pumpScheduled = false;
  private closed = false;
  private markStarted: (threaded: boolean) => void = () => undefined;
  /** Settles when the worker said it is ready (true) or there is none, or it failed (false). */
  readonly started = new Promise<boolean>((resolve) => {
    this.markStarted = resolve;
  });

  /**
   * `worker`: where the worker module is (tests pass one that fails); false checks in this thread
   * only. `slices`: turns of the event loop while a segment is scanned in this thread.
   */
  constructor(worker: URL | false = workerUrl, private readonly slices: LoopSlices = new LoopSlices()) {
    if (worker === false) {
      this.markStarted(false);
      return;
    }
    try {
      this.worker = startModuleWorker(worker, undefined);
    } catch {
      this.markStarted(false);
      return; // no worker: every check runs here
    }
    this.worker.on('message', (message: CheckMessage) => this.onMessage(message));
    this.worker.on('error', () => this.failOver());
    this.worker.on('exit', () => this.failOver());
  }

  /** True while checks go to a worker thread. */
  get threaded(): boolean {
    return this.worker !== undefined;
  }

  /** Settles after the handlers took the segment's verdict (rejects with what they threw). */
  check(buf: Buffer, file: string, firstOffset: number, handlers: CheckHandlers): Promise<void> {
    if (this.closed) throw new Error('segment checker closed');
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ buf, file, firstOffset, handlers, posted: false, answered: false, inbox: [], handed: 0, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    this.markStarted(false);
    if (worker) await worker.terminate();
  }

  /** Give a ready worker every check it can take (all but one running here), then move the line on. */
  private dispatch(): void {
    const worker = this.worker;
    if (worker && this.ready) {
      for (const pending of this.queue) {
        const memory = pending.buf.buffer;
        if (pending.posted || pending === this.runningHere || !(memory instanceof SharedArrayBuffer)) continue;
        pending.posted = true;
        const request: CheckRequest = { memory, byteOffset: pending.buf.byteOffset, length: pending.buf.length, file: pending.file, firstOffset: pending.firstOffset, batchFrames: checkBatchFrames };
        worker.postMessage(request);
      }
    }
    this.pump();
  }

  /** Settle checks first in line: from the worker's answers, or by running them here. */
  private pump(): void {
    for (let head = this.queue[0]; head && !this.runningHere && !this.pumpScheduled; head = this.queue[0]) {
      const taken = this.take(head);
      if (taken === 'settled') {
        this.queue.shift();
        continue;
      }
      if (taken === 'more') {
        // One batch per turn of the event loop: reads of the next segments go on meanwhile.
        this.pumpScheduled = true;
        setImmediate(() => {
          this.pumpScheduled = false;
          this.pump();
        });
        return;
      }
      if (head.posted) return; // more answers to come
      this.runningHere = head;
      void this.checkHere(head).finally(() => {
        this.queue.shift();
        this.runningHere = undefined;
        this.pump();
      });
    }
  }

  /** Hand on the worker's next answer for `head`: 'settled' when it was the verdict, 'more' when more wait, 'none' when none waited. */
  private take(head: PendingCheck): 'settled' | 'more' | 'none' {
    const message = head.inbox.shift();
    if (!message) return 'none';
    if (message.kind === 'done') {
      const { kind: _kind, ...verdict } = message;
      settle(head, verdict);
      return 'settled';
    }
    if (message.kind === 'frames' && head.failure === undefined) {
      try {
        head.handlers.frames(message.positions);
        head.handed += message.positions.length;
      } catch (error) {
        head.failure = error;
      }
    }
    return head.inbox.length > 0 ? 'more' : 'none';
  }

  private onMessage(message: CheckMessage): void {
    if (message.kind === 'ready') {
      this.ready = true;
      this.markStarted(true);
      this.dispatch();
      return;
    }
    // The worker answers in the order checks were posted.
    const target = this.queue.find((p) => p.posted && !p.answered);
    if (!target) return;
    if (message.kind === 'done') target.answered = true;
    target.inbox.push(message);
    this.pump();
  }

  /** The worker failed or died: every check it had not answered is done here, in order. */
  private failOver(): void {
    if (this.closed || !this.worker) return;
    const worker = this.worker;
    this.worker = undefined;
    this.markStarted(false);
    void worker.terminate();
    for (const pending of this.queue) if (!pending.answered) pending.posted = false;
    this.pump();
  }

  /** Check in this thread, handing on only the frames not handed on yet, a batch per turn of the event loop. */
  private async checkHere(pending: PendingCheck): Promise<void> {
    if (pending.failure !== undefined) {
      pending.reject(pending.failure);
      return;
    }
    try {
      const scanned = await scanSegmentBytesInSlices(pending.buf, pending.file, pending.firstOffset, this.slices);
      const positions = scanned.info.positions;
      while (pending.handed < positions.length) {
        const batch = positions.slice(pending.handed, pending.handed + checkBatchFrames);
        pending.handlers.frames(batch);
        pending.handed += batch.length;
        if (pending.handed < positions.length) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const { info, problem, headerBad, zeroTail } = scanned;
      settle(pending, { end: info.end, frames: positions.length, ...(problem ? { problem } : {}), ...(headerBad ? { headerBad } : {}), ...(zeroTail ? { zeroTail } : {}) });
    } catch (error) {
      pending.reject(error);
    }
  }
}

function settle(pending: PendingCheck, verdict: SegmentVerdict): void {
  if (pending.failure !== undefined) {
    pending.reject(pending.failure);
    return;
  }
  try {
    pending.handlers.verdict(verdict);
    pending.resolve();
  } catch (error) {
    pending.reject(error);
  }
}
