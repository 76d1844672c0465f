/**
 * Postgres gone silent (its backends stopped, or a network path dropping packets: no reset, no
 * answer): every query of the control plane rejects within its query timeout, and the client
 * that timed out is destroyed, not lent again, so the next query (on a new connection) works.
 * Silence is made by a TCP relay of this test's own between the control plane and the shared
 * test Postgres: it stops moving the bytes of the connections it holds, as SIGSTOP of their
 * backends would, while new connections go through (the postmaster still answers).
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openControlPlane, queryTimeoutMsDefault, type ControlPlane } from '../../storage/control/control-plane.js';
import { freshPostgresDatabase } from '../support/services.js';

const queryTimeoutMs = 1_000;

interface SilencingRelay {
  readonly port: number;
  /** The connections open now stop moving bytes (both ways), without closing. */
  silenceOpenConnections(): void;
  close(): Promise<void>;
}

async function startRelay(host: string, port: number): Promise<SilencingRelay> {
  const pairs: Array<[Socket, Socket]> = [];
  const silenced: Socket[] = [];
  const server: Server = createServer((client) => {
    const upstream = createConnection(port, host);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    pairs.push([client, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    silenceOpenConnections() {
      for (const [client, upstream] of pairs.splice(0)) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
        silenced.push(client, upstream);
      }
    },
    async close() {
      for (const socket of [...silenced, ...pairs.flat()]) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let control: ControlPlane;
let relay: SilencingRelay;
let drop: () => Promise<void>;

beforeAll(async () => {
  const db = await freshPostgresDatabase('silent');
  drop = db.drop;
  const direct = new URL(db.url);
  relay = await startRelay(direct.hostname, Number(direct.port));
  const relayed = new URL(db.url);
  relayed.port = String(relay.port);
  control = await openControlPlane({ databaseUrl: relayed.toString(), databaseDirectUrl: db.url, queryTimeoutMs, poolMax: 2 });
});

afterAll(async () => {
  await control?.close();
  await relay?.close();
  await drop?.();
});

test('a query to a silent server rejects within the query timeout, and the next one runs on a new connection', async () => {
  await Promise.all([control.auditBacklog(), control.pendingKeycloakEvents(1)]); // both pool connections open
  relay.silenceOpenConnections();

  const startedMs = performance.now();
  await expect(control.auditBacklog()).rejects.toThrow(/timeout/i);
  await expect(control.markProjected(1, 'kc')).rejects.toThrow(/timeout/i); // a transaction's client too
  // Two timeouts of this test's 1 s, not of the 30 s default (queryTimeoutMsDefault); the bound
  // leaves a loaded machine room, which is no figure of how fast it is.
  expect(performance.now() - startedMs).toBeLessThan(Math.min(10 * queryTimeoutMs, queryTimeoutMsDefault));

  // Had a timed-out client gone back to the pool, this would wait behind its unanswered query.
  expect(await control.auditBacklog()).toEqual([]);
  expect(await control.pendingKeycloakEvents(1)).toEqual([]);
});
