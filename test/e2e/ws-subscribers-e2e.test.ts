/**
 * WebSocket subscribers on the real built server (local mode), as the operator sees them:
 * - one that stops reading shows in /metrics: `ioboxx_subscription_lag_transactions` rises while
 *   its messages wait, and once it is cut off (4008) `ioboxx_subscription_drops_total{reason=
 *   "slow_consumer"}` counts it and the lag is gone. Before, the lag gauge was declared and
 *   documented (docs/OPERATIONS.md) but nothing fed it: it read 0 whatever waited;
 * - one whose tenant's store fails lets go of it: it is closed (1013) and the server reopens the
 *   store by itself, as OPERATIONS says it does once nothing holds it. Before, the subscriber kept
 *   its lease and every request of the tenant was refused "reopen pending" while it stayed
 *   connected. The store fails the way a lost volume fails it: its directory deleted under it
 *   (last: the tenant's store is gone afterwards).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { parsePrometheusText } from '../ops/prometheus-text.js';
import { connectNewerHttp, type McpTestClient } from '../support/mcp-clients.js';
import { waitUntil } from '../support/wait-until.js';
import { TestClient } from '../ws/ws-test-client.js';
import { startHttpServer, type ServerProcess } from './server-process.js';

let dataDir: string;
let server: ServerProcess;
let writer: McpTestClient;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-lag-metric-'));
  server = await startHttpServer({ IOBOXX_DATA_DIR: dataDir });
  writer = await connectNewerHttp({ url: `${server.url}/mcp` });
}, 120_000);

afterAll(async () => {
  await writer?.close();
  await server?.stop();
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
});

async function metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const families = parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
  return families.get(name)?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

test('a subscriber that stops reading shows as lag, then as a slow_consumer drop once cut off', async () => {
  const stalled = await TestClient.connect(`${server.url.replace('http', 'ws')}/ws`);
  stalled.send({ type: 'subscribe', queries: [{ id: 'all', table: 'objects' }] });
  await stalled.nextOfType('subscribed');
  // The client reads nothing more: what the server sends waits in the kernel, then in its queue.
  (stalled.ws as unknown as { _socket: Socket })._socket.pause();
  expect(await metric('ioboxx_subscription_lag_transactions')).toBe(0);

  // About 100 KiB per transaction: 16 MiB (sendQueueBytesMax) past the socket buffers within ~400.
  const attributes = { text: 'x'.repeat(100 * 1024) };
  const writesMax = 1_000;
  let lagSeen = 0;
  let writes = 0;
  while (lagSeen === 0 && writes < writesMax) {
    const result = await writer.callTool('object_put', { id: `big-${writes++}`, type: 'blob', attributes });
    expect(result.isError).not.toBe(true);
    lagSeen = (await metric('ioboxx_subscription_lag_transactions'))!;
  }
  expect(lagSeen, `the lag gauge stayed 0 through ${writes} transactions the subscriber never read`).toBeGreaterThan(0);

  // Past sendQueueBytesMax the subscriber is cut off: counted, and its lag goes with it.
  let drops = 0;
  while (drops === 0 && writes < writesMax) {
    await writer.callTool('object_put', { id: `big-${writes++}`, type: 'blob', attributes });
    drops = (await metric('ioboxx_subscription_drops_total', { reason: 'slow_consumer' }))!;
  }
  expect(drops, `no slow_consumer drop through ${writes} transactions`).toBe(1);
  expect(await metric('ioboxx_subscription_lag_transactions')).toBe(0);
  stalled.ws.terminate();
}, 120_000);

async function failedStoreReopens(): Promise<number> {
  const families = parsePrometheusText(await (await fetch(`${server.url}/metrics`)).text());
  return families.get('ioboxx_failed_store_reopens_total')?.samples[0]?.value ?? 0;
}

/** A write's outcome: ok, or the refusal's text. */
async function put(id: string): Promise<string> {
  try {
    const result = await writer.callTool('object_put', { id, type: 'note', attributes: {} });
    return result.isError === true ? JSON.stringify(result.content) : 'ok';
  } catch (error) {
    return String(error);
  }
}

test('a WebSocket subscriber lets go of its tenant\'s failed store (1013), so the server reopens it', async () => {
  expect(await put('before')).toBe('ok');
  const subscriber = await TestClient.connect(`${server.url.replace('http', 'ws')}/ws`);
  subscriber.send({ type: 'subscribe', queries: [{ id: 'notes', table: 'objects', where: { type: 'note' } }] });
  await subscriber.nextOfType('subscribed');

  await rm(path.join(dataDir, 'tenants', 'local'), { recursive: true, force: true });
  // Within filesCheckMsDefault an acknowledgement finds the segment gone and fails the store.
  let n = 0;
  await waitUntil('the store failed', async () => (await put(`after-${n++}`)) !== 'ok');

  const closed = await Promise.race([subscriber.closed, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 20_000))]);
  expect(closed, 'the subscriber still holds the failed store').toBeDefined();
  expect(closed!.code).toBe(1013);
  expect(closed!.reason).toContain('failed');
  // Nothing holds the store now: a request past the reopen backoff (5 s) closes and reopens it.
  await waitUntil('the failed store reopened', async () => {
    await put(`retry-${n++}`);
    return (await failedStoreReopens()) >= 1;
  }, 30_000);
}, 90_000);
