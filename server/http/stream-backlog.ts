/**
 * What an event stream owes its client: the bytes of the notifications handed to the stream and
 * not yet written to its HTTP response. The SDK queues each notification in the stream's
 * ReadableStream whatever the client reads (its node adapter stops writing while the socket is
 * full, the queue does not stop growing), so a client that holds a stream open and never reads
 * made the server keep every notification of a busy tenant, without end (DESIGN §2.6). Past
 * `streamBacklogBytesMax` the stream is cut (its response destroyed): the client listens again,
 * and reads what changed meanwhile with resources/read, as after any lost stream.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from '../log.js';

/** Bytes a notification stream may owe its client before it is cut; as a WebSocket's sendQueueBytesMax. */
export const streamBacklogBytesMax = 16 * 1024 * 1024;

/**
 * The bytes of a `notifications/resources/updated` frame for `uri`, at least: its JSON-RPC
 * message without the stream's own additions (the SSE framing, an event id, the subscription's
 * `_meta`). Counting a lower bound, a client that reads everything never owes more than it was
 * sent; one that reads nothing owes at most a few times the bound.
 */
export function resourceUpdatedBytesMin(uri: string): number {
  return resourceUpdatedFrameBytes + Buffer.byteLength(uri);
}
const resourceUpdatedFrameBytes = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: '' } }).length;

/** What is done when `what`, a stream of `tenant`, is cut for its backlog: a warning, then `onCut` (the metrics). */
export function streamCutReport(log: Logger, what: string, tenant: string, bytesMax: number, onCut: ((tenant: string) => void) | undefined): (owedBytes: number) => void {
  return (owedBytes) => {
    log.warn({ tenant, owedBytes, streamBacklogBytesMax: bytesMax }, `${what} cut: its client reads too slowly`);
    onCut?.(tenant);
  };
}

export class StreamBacklog {
  private owedBytes = 0;
  private cut = false;

  /** Counts every byte written to `res` as paid; calls `onCut` once, when the stream is cut. */
  constructor(private readonly res: ServerResponse, private readonly bytesMax: number, private readonly onCut: (owedBytes: number) => void) {
    const write = res.write;
    const paid = (chunk: unknown): void => {
      const bytes = typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as { byteLength?: number } | null)?.byteLength ?? 0;
      this.owedBytes = Math.max(0, this.owedBytes - bytes);
    };
    res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]): boolean {
      paid(chunk);
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as ServerResponse['write'];
  }

  /** The stream was cut, or its response is over. */
  get ended(): boolean {
    return this.cut || this.res.destroyed || this.res.writableEnded;
  }

  /** Counts `bytes` more as owed; false (the stream cut, or ended) when they may not be sent. */
  owe(bytes: number): boolean {
    if (this.ended) return false;
    this.owedBytes += bytes;
    if (this.owedBytes <= this.bytesMax) return true;
    this.cut = true;
    const owed = this.owedBytes;
    this.res.destroy();
    this.onCut(owed);
    return false;
  }
}
