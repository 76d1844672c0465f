/**
 * A real `ws` client for the tests: every message it receives is kept in order, and a test
 * waits for the next one (or the one it wants) as an event, never with a sleep.
 */
import { once } from 'node:events';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';

export type Message = Record<string, any>;

const packr = new Packr({ useRecords: false, mapsAsObjects: true });
const waitMsDefault = 10_000;

export class TestClient {
  readonly received: Message[] = [];
  private cursor = 0;
  private waiters: (() => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.received.push((isBinary ? packr.unpack(data) : JSON.parse(data.toString('utf8'))) as Message);
      this.wake();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString('utf8') });
      this.wake();
    }));
  }

  static async connect(url: string, options: { token?: string; protocols?: string[]; headers?: Record<string, string> } = {}): Promise<TestClient> {
    const headers = { ...options.headers, ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) };
    const ws = new WebSocket(url, options.protocols ?? [], { headers });
    const client = new TestClient(ws);
    const error = once(ws, 'error').then(([e]) => { throw e as Error; });
    await Promise.race([once(ws, 'open'), error]);
    return client;
  }

  /** The status and body of a refused upgrade. */
  static refusal(url: string, options: { token?: string; protocols?: string[]; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
    const headers = { ...options.headers, ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) };
    const ws = new WebSocket(url, options.protocols ?? [], { headers });
    return new Promise((resolve, reject) => {
      ws.on('open', () => {
        ws.terminate();
        reject(new Error('the upgrade was accepted'));
      });
      ws.on('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      });
      ws.on('error', () => undefined);
    });
  }

  send(message: unknown): void {
    this.ws.send(JSON.stringify(message));
  }

  sendPacked(message: unknown): void {
    this.ws.send(packr.pack(message));
  }

  /** The next message not yet taken that satisfies `accept` (earlier ones stay skipped). */
  async next(accept: (m: Message) => boolean = () => true, waitMs = waitMsDefault): Promise<Message> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      while (this.cursor < this.received.length) {
        const m = this.received[this.cursor++]!;
        if (accept(m)) return m;
      }
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`connection closed while waiting; got ${JSON.stringify(this.received.slice(-3))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching message within ${waitMs} ms; last: ${JSON.stringify(this.received.slice(-3))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  nextOfType(type: string, waitMs?: number): Promise<Message> {
    return this.next((m) => m.type === type, waitMs);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  close(): void {
    this.ws.close();
  }
}
