/**
 * A connection's outgoing messages, bounded. At most `socketBufferBytesMax` sits in the
 * socket's own buffer; the rest waits here, so cutting off a slow consumer drops what it
 * never read and its close frame goes out right behind what the socket already holds.
 * Commits never wait on this: `send` only appends, and reports overflow.
 */
import type { Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { encodedBytes } from './wire-format.js';

/** The socket under the WebSocket, as far as batching its writes goes. */
export type Corkable = Pick<Writable, 'cork' | 'uncork'>;

export class SendQueue {
  private readonly queue: (string | Buffer)[] = [];
  private queuedBytes = 0;
  private dropped = false;
  private drainWaiters: (() => void)[] = [];
  private readonly pumpAfterWrite = (error?: Error): void => {
    if (!error) this.pump();
  };
  /** Frame kind of every message: the format decides it, a Buffer may hold JSON text too. */
  private readonly frameOptions: { readonly binary: boolean };

  constructor(
    private readonly ws: WebSocket,
    /** The TCP socket `ws` writes to: corked around a batch so its frames leave in one writev. */
    private readonly socket: Corkable,
    private readonly sendQueueBytesMax: number,
    private readonly socketBufferBytesMax: number,
    binaryFrames: boolean,
  ) {
    this.frameOptions = { binary: binaryFrames };
  }

  /** Messages waiting here, not yet handed to the socket (the metrics' subscription lag). */
  get queuedMessages(): number {
    return this.queue.length;
  }

  /** Bytes not yet handed to the kernel: ours plus the socket's. */
  get pendingBytes(): number {
    return this.queuedBytes + this.ws.bufferedAmount;
  }

  /**
   * Appends a message; false when it would pass sendQueueBytesMax (the caller cuts the consumer
   * off). A message always fits an empty queue, so one large transaction is not a cut-off.
   */
  send(data: string | Buffer): boolean {
    if (this.dropped) return false;
    const bytes = encodedBytes(data);
    const pending = this.pendingBytes;
    if (pending > 0 && pending + bytes > this.sendQueueBytesMax) return false;
    this.queue.push(data);
    this.queuedBytes += bytes;
    this.pump();
    return true;
  }

  /**
   * Runs `write` with the socket corked: every frame it sends leaves in one writev when it
   * returns. A syscall per message is what fan-out costs most; a connection that several
   * transactions reach in one flush pays one instead (and a backlog drains in large writes).
   */
  batch(write: () => void): void {
    this.socket.cork();
    try {
      write();
    } finally {
      this.socket.uncork();
    }
  }

  /** Resolves once at most half the limit is pending (paces a resume's replay to the reader). */
  roomForMore(): Promise<void> {
    if (this.dropped || this.pendingBytes <= this.sendQueueBytesMax / 2) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Forget everything not yet in the socket (cut-off and close). */
  drop(): void {
    this.dropped = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.releaseWaiters();
  }

  private pump(): void {
    while (this.queue.length > 0 && this.ws.bufferedAmount < this.socketBufferBytesMax && this.ws.readyState === this.ws.OPEN) {
      const data = this.queue.shift()!;
      this.queuedBytes -= encodedBytes(data);
      // The callback runs once the frame left for the kernel: time to hand over more.
      this.ws.send(data, this.frameOptions, this.pumpAfterWrite);
    }
    if (this.drainWaiters.length > 0 && this.pendingBytes <= this.sendQueueBytesMax / 2) this.releaseWaiters();
  }

  private releaseWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
