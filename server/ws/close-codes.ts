/**
 * Close codes the server sends (PROTOCOL.md lists them with what a client should do).
 * 4xxx are this protocol's own (RFC 6455 §7.4.2: 4000-4999 are for applications).
 */
export const wsClose = {
  /** The client closed, or unsubscribed everything and said goodbye. */
  normal: 1000,
  /** The server is shutting down: reconnect (with `after`) later. */
  goingAway: 1001,
  /** A client message exceeded inboundMessageBytesMax (sent by `ws` itself). */
  messageTooBig: 1009,
  /** A bug on the server; reconnecting may help. */
  internalError: 1011,
  /** The tenant's store is unavailable (busy, failed, issuer unreachable): retry later. */
  tryAgainLater: 1013,
  /** The first message was not `auth` on a connection that must authenticate. */
  badRequest: 4400,
  /** No valid credentials: bad or expired token, or no `auth` message in time. */
  unauthorized: 4401,
  /** Valid credentials that may not do this (another tenant, another subject on re-auth). */
  forbidden: 4403,
  /** The `auth` message did not arrive within authTimeoutMs. */
  authTimeout: 4408,
  /** Slow consumer: more than sendQueueBytesMax waited to be sent. Reconnect with `after`. */
  slowConsumer: 4008,
} as const;

export type WsCloseCode = (typeof wsClose)[keyof typeof wsClose];

/** RFC 6455 §5.5: a control frame's payload is at most 125 bytes, 2 of them the code. */
export const closeReasonBytesMax = 123;

export function closeReason(text: string): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= closeReasonBytesMax) return text;
  // Cut on a character boundary: a reason must be valid UTF-8.
  let cut = closeReasonBytesMax;
  while (cut > 0 && (buf[cut]! & 0xc0) === 0x80) cut--;
  return buf.subarray(0, cut).toString('utf8');
}
