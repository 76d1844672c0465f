/**
 * Checks segments (scanSegmentBytes: frame bounds, CRC32C, contiguous offsets) on a second
 * thread while the main thread applies the frames already checked: replay's CRC work (about a
 * fifth of it) leaves the main thread, which is replay's critical path. Segments are checked one
 * after another in the order asked; each one's good frames are handed to its `onFrames` in
 * batches, in order, as the worker finds them, then its verdict settles the promise.
 *
 * The same checks run in this thread when there is no worker: when asked (`inProcess`), when
 * the buffer is not shared memory, or when the worker fails to start or dies. A segment the worker
 * left half-checked is checked again here from the start; frames already handed on are not
 * handed on twice.
 */
import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../io/module-worker.js';
import { scanSegmentBytes, type Damage } from './recovery.js';

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

/** From the worker: positions of the next good frames of the segment being checked, or its verdict. */
export type CheckMessage = { readonly kind: 'frames'; readonly positions: Float64Array } | ({ readonly kind: 'done' } & SegmentVerdict);

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
  /** Frames handed to onFrames so far. */
  handed: number;
  failure?: unknown;
  resolve(): void;
  reject(error: unknown): void;
}

export class SegmentChecker {
  private worker: Worker | undefined;
  /** Checks posted to the worker and not yet settled, oldest first. */
  private readonly queue: PendingCheck[] = [];
  private closed = false;

  /** `worker`: where the worker module is (tests pass one that fails); false checks in this thread only. */
  constructor(worker: URL | false = workerUrl) {
    if (worker === false) return;
    try {
      this.worker = startModuleWorker(worker, undefined);
    } catch {
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
      const pending: PendingCheck = { buf, file, firstOffset, handlers, handed: 0, resolve, reject };
      const memory = buf.buffer;
      if (this.worker && memory instanceof SharedArrayBuffer) {
        this.queue.push(pending);
        const request: CheckRequest = { memory, byteOffset: buf.byteOffset, length: buf.length, file, firstOffset, batchFrames: checkBatchFrames };
        this.worker.postMessage(request);
      } else if (this.queue.length === 0) {
        checkHere(pending);
      } else {
        this.queue.push(pending); // behind checks the worker holds: settled in order when they are
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private onMessage(message: CheckMessage): void {
    const head = this.queue[0];
    if (!head) return;
    if (message.kind === 'frames') {
      if (head.failure !== undefined) return;
      try {
        head.handlers.frames(message.positions);
        head.handed += message.positions.length;
      } catch (error) {
        head.failure = error;
      }
      return;
    }
    this.queue.shift();
    const { kind: _kind, ...verdict } = message;
    settle(head, verdict);
    // A check queued behind the worker's that was not given to it runs here now.
    while (this.queue[0] && !(this.queue[0].buf.buffer instanceof SharedArrayBuffer && this.worker)) checkHere(this.queue.shift()!);
  }

  /** The worker failed or died: every unsettled check is done here, in order. */
  private failOver(): void {
    if (this.closed || !this.worker) return;
    const worker = this.worker;
    this.worker = undefined;
    void worker.terminate();
    for (const pending of this.queue.splice(0)) checkHere(pending);
  }
}

/** Check in this thread, handing on only the frames the worker had not. */
function checkHere(pending: PendingCheck): void {
  if (pending.failure !== undefined) {
    pending.reject(pending.failure);
    return;
  }
  try {
    const scanned = scanSegmentBytes(pending.buf, pending.file, pending.firstOffset);
    const positions = scanned.info.positions;
    if (positions.length > pending.handed) pending.handlers.frames(pending.handed === 0 ? positions : positions.slice(pending.handed));
    const { info, problem, headerBad, zeroTail } = scanned;
    settle(pending, { end: info.end, frames: positions.length, ...(problem ? { problem } : {}), ...(headerBad ? { headerBad } : {}), ...(zeroTail ? { zeroTail } : {}) });
  } catch (error) {
    pending.reject(error);
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
