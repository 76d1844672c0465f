/**
 * Worker thread for bench/ws.ts: opens WebSocket subscribers against the benchmark server,
 * subscribes each to its queries, and records when every `tx` message arrives (wall-clock
 * ms: performance.timeOrigin + now(), comparable across threads) with its offset. The
 * offset is read from the message head (`{"type":"tx","offset":N,...` is how the server
 * writes it), so client-side parsing does not dominate what is measured.
 */
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';

export interface SubscribersSpec {
  readonly url: string;
  /** queries[c] are the `where` objects of connection c's queries (table objects). */
  readonly queries: readonly (readonly Record<string, unknown>[])[];
}

export interface SubscribersResult {
  readonly offsets: Float64Array;
  readonly receivedAtMs: Float64Array;
  readonly count: number;
  readonly errors: readonly string[];
}

const offsetPattern = /^\{"type":"tx","offset":(\d+)/;

class Recorder {
  offsets = new Float64Array(1 << 16);
  receivedAtMs = new Float64Array(1 << 16);
  count = 0;

  add(offset: number, atMs: number): void {
    if (this.count === this.offsets.length) {
      const grow = (a: Float64Array) => {
        const b = new Float64Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.offsets = grow(this.offsets);
      this.receivedAtMs = grow(this.receivedAtMs);
    }
    this.offsets[this.count] = offset;
    this.receivedAtMs[this.count++] = atMs;
  }
}

async function run(spec: SubscribersSpec): Promise<void> {
  const recorder = new Recorder();
  const errors: string[] = [];
  const sockets: WebSocket[] = [];
  let recording = false;
  await Promise.all(
    spec.queries.map(
      (wheres, c) =>
        new Promise<void>((resolve, reject) => {
          // The harness reads only each message's head: no UTF-8 check of the rest, no deflate offer.
          const ws = new WebSocket(spec.url, ['ioboxx.v1'], { skipUTF8Validation: true, perMessageDeflate: false });
          sockets.push(ws);
          ws.on('error', reject);
          ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', queries: wheres.map((where, q) => ({ id: `c${c}q${q}`, table: 'objects', where })) })));
          ws.on('message', (data: Buffer) => {
            const atMs = performance.timeOrigin + performance.now();
            const head = data.toString('latin1', 0, 48);
            const match = offsetPattern.exec(head);
            if (match) {
              if (recording) recorder.add(Number(match[1]), atMs);
              return;
            }
            if (head.startsWith('{"type":"subscribed"')) resolve();
            else if (head.startsWith('{"type":"error"')) reject(new Error(`subscribe refused: ${data.toString('utf8').slice(0, 300)}`));
          });
          ws.on('close', (code) => {
            if (code !== 1000 && code !== 1005) errors.push(`connection ${c} closed with ${code}`);
          });
        }),
    ),
  );
  parentPort!.on('message', (message: string) => {
    if (message === 'record') {
      recording = true;
      parentPort!.postMessage('recording');
    } else if (message === 'count') {
      parentPort!.postMessage({ count: recorder.count });
    } else if (message === 'stop') {
      recording = false;
      for (const ws of sockets) ws.close(1000);
      const result: SubscribersResult = {
        offsets: recorder.offsets.slice(0, recorder.count),
        receivedAtMs: recorder.receivedAtMs.slice(0, recorder.count),
        count: recorder.count,
        errors,
      };
      parentPort!.postMessage(result);
    }
  });
  parentPort!.postMessage('ready');
}

if (parentPort && (workerData as { wsSubscribers?: SubscribersSpec } | undefined)?.wsSubscribers) {
  run((workerData as { wsSubscribers: SubscribersSpec }).wsSubscribers).catch((error: unknown) => {
    parentPort!.postMessage({ failed: String((error as Error).stack ?? error) });
  });
}
