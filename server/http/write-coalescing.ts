/**
 * Answers written in one go at the end of the event loop's poll phase instead of one by one
 * as each call finishes.
 *
 * Why: in one poll phase the server reads every connection that has a request; a call that
 * finishes within its read (a read tool, a cached answer) was written at once, between the
 * reads of the next connections. Each such write to a loopback socket wakes the client thread
 * waiting on it, and on this VM a wake-up costs the writing thread tens of microseconds (in a
 * profile of the audit benchmark the response writev was ~10 % of the main thread's samples).
 * Written together, the first write to a client thread wakes it and the following ones find it
 * awake. Each answer is still one write (its headers and body), in the same turn of the loop.
 */
import type { Socket } from 'node:net';
import { activeCallers } from '../../storage/log/inline-sync.js';

/** Sockets corked by hold(), uncorked together by the next setImmediate (the check phase, after the poll phase's reads). */
const held = new Set<Socket>();
let flushScheduled = false;

function flushHeld(): void {
  flushScheduled = false;
  for (const socket of held) socket.uncork();
  held.clear();
}

/**
 * With more than one active caller on this thread (the connections the HTTP server tells
 * storage/log/inline-sync.ts of), keeps what is written to `socket` from now on (one answer: `res.end` corks for itself and
 * uncorks on the next tick) until the end of this poll phase, or of the next one when called
 * in the check phase (the loop does not block meanwhile: an immediate is pending). Held at
 * most once at a time: one cork, one uncork.
 */
export function holdWritesUntilPollEnd(socket: Socket): void {
  // A lone caller's answer has nothing to be written with: held, it would only wait (a turn of
  // the loop when held from the check phase, where an inline-synced write is acknowledged).
  if (activeCallers() <= 1 || held.has(socket)) return;
  socket.cork();
  held.add(socket);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushHeld);
  }
}
