/**
 * One HTTP/1.1 keep-alive connection on a TCP socket, one exchange at a time: the request is
 * written as one string, the answer read by its Content-Length or its chunked framing (or to the
 * end of the connection when it has neither). What node:http's client does per request (a
 * ClientRequest, header objects, an IncomingMessage stream) is most of a lean caller's CPU; this
 * is the part of it an MCP call needs. Reconnects when the server closed the connection.
 */
import net from 'node:net';

export interface HttpAnswer {
  readonly status: number;
  /** Header names in lower case; a repeated header keeps its last value. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Status line and headers past this are refused (an answer's head is a few hundred bytes). */
const headBytesMax = 64 * 1024;
const headEnd = Buffer.from('\r\n\r\n');
const lineEnd = Buffer.from('\r\n');

interface Pending {
  resolve(answer: HttpAnswer): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export class HttpConnection {
  private socket: net.Socket | undefined;
  private received: Buffer = Buffer.alloc(0);
  private pending: Pending | undefined;
  private destroyed = false;

  constructor(
    private readonly url: URL,
    private readonly answerTimeoutMs: number,
    private readonly answerBytesMax: number,
  ) {}

  exchange(method: string, path: string, headers: Readonly<Record<string, string>>, body: string | undefined): Promise<HttpAnswer> {
    if (this.destroyed) return Promise.reject(new Error('connection destroyed'));
    if (this.pending !== undefined) return Promise.reject(new Error('one exchange at a time on a connection'));
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${this.url.host}\r\nconnection: keep-alive\r\n`;
    for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
    head += `content-length: ${body === undefined ? 0 : Buffer.byteLength(body)}\r\n\r\n`;
    const socket = this.socket ?? this.open();
    return new Promise<HttpAnswer>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`no answer within ${this.answerTimeoutMs} ms`)), this.answerTimeoutMs);
      this.pending = { resolve, reject, timer };
      socket.write(body === undefined ? head : head + body);
    });
  }

  destroy(): void {
    this.destroyed = true;
    this.fail(new Error('connection destroyed'));
  }

  private open(): net.Socket {
    const socket = net.connect({ host: this.url.hostname.replace(/^\[|\]$/g, ''), port: Number(this.url.port || 80), noDelay: true });
    this.socket = socket;
    this.received = Buffer.alloc(0);
    // A socket this connection has moved on from (the server asked to close it) is not listened to.
    const current = () => this.socket === socket;
    const parse = (ended: boolean) => {
      try {
        this.parse(ended);
      } catch (error) {
        this.fail(error as Error);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      if (!current()) return;
      this.received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
      parse(false);
    });
    socket.on('end', () => current() && parse(true));
    socket.on('error', (error) => current() && this.fail(error));
    socket.on('close', () => {
      if (!current()) return;
      this.socket = undefined;
      this.fail(new Error('connection closed before the answer'));
    });
    return socket;
  }

  /** Completes the pending exchange once its answer is whole; `ended`: the server closed the connection. */
  private parse(ended: boolean): void {
    const pending = this.pending;
    if (pending === undefined) return;
    const data = this.received;
    const headLength = data.indexOf(headEnd);
    if (headLength < 0) {
      if (data.length > headBytesMax) this.fail(new Error(`answer head larger than ${headBytesMax} bytes`));
      return;
    }
    const lines = data.toString('latin1', 0, headLength).split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
    if (status === null) return this.fail(new Error(`not an HTTP answer: ${lines[0]!.slice(0, 100)}`));
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i]!.indexOf(':');
      if (colon > 0) headers[lines[i]!.slice(0, colon).toLowerCase()] = lines[i]!.slice(colon + 1).trim();
    }
    const bodyStart = headLength + headEnd.length;
    const framed = this.framedBody(data, bodyStart, headers, ended);
    if (framed === undefined) return;
    if (framed.body.length > this.answerBytesMax) return this.fail(new Error(`answer larger than ${this.answerBytesMax} bytes`));
    this.received = data.subarray(framed.end);
    this.pending = undefined;
    clearTimeout(pending.timer);
    if (headers['connection']?.toLowerCase() === 'close' || ended) {
      const closing = this.socket;
      this.socket = undefined; // the next exchange opens a new connection
      closing?.end();
    }
    pending.resolve({ status: Number(status[1]), headers, body: framed.body.toString('utf8') });
  }

  /** The body and where the answer ends, or undefined while it is incomplete. */
  private framedBody(data: Buffer, start: number, headers: Record<string, string>, ended: boolean): { body: Buffer; end: number } | undefined {
    const length = headers['content-length'];
    if (length !== undefined) {
      const end = start + Number(length);
      return data.length >= end ? { body: data.subarray(start, end), end } : undefined;
    }
    if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      let at = start;
      for (;;) {
        const sizeEnd = data.indexOf(lineEnd, at);
        if (sizeEnd < 0) return undefined;
        const size = parseInt(data.toString('latin1', at, sizeEnd), 16);
        if (!Number.isFinite(size)) throw new Error('bad chunk size');
        if (size === 0) {
          // The last chunk, then (no trailers from these servers) the final CRLF.
          const end = data.indexOf(lineEnd, sizeEnd + lineEnd.length);
          return end < 0 ? undefined : { body: Buffer.concat(parts), end: end + lineEnd.length };
        }
        const chunkStart = sizeEnd + lineEnd.length;
        if (data.length < chunkStart + size + lineEnd.length) return undefined;
        parts.push(data.subarray(chunkStart, chunkStart + size));
        at = chunkStart + size + lineEnd.length;
      }
    }
    // Neither: the body runs to the end of the connection.
    return ended ? { body: data.subarray(start), end: data.length } : undefined;
  }

  private fail(error: Error): void {
    const pending = this.pending;
    this.pending = undefined;
    if (pending !== undefined) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    if (this.destroyed || pending !== undefined) {
      this.socket?.destroy();
      this.socket = undefined;
    }
  }
}
