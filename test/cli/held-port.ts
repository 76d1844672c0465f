/** A loopback port the test process listens on while a file's tests run, so that a server started on it cannot listen. */
import { createServer } from 'node:net';
import { afterAll, beforeAll } from 'vitest';

/** Registers the file's beforeAll/afterAll; the port's number, once beforeAll has run. */
export function heldPort(): () => number {
  const server = createServer();
  let port = 0;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return () => port;
}
