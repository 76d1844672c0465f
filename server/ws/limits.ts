/**
 * Named bounds of the WebSocket endpoint (DESIGN §2.6: every queue, buffer and message has a
 * limit and a clear answer past it). Each can be lowered per server through `WsLimits`
 * (tests use small ones); the defaults are what PROTOCOL.md documents.
 */

export interface WsLimits {
  /** A client message larger than this closes the connection with 1009 (checked by `ws` before parsing). */
  readonly inboundMessageBytesMax: number;
  /** Bytes waiting to go out (our queue + the socket's buffer); past it the consumer is cut off (4008). */
  readonly sendQueueBytesMax: number;
  /** Bytes handed to the socket at once; the rest waits in our queue so a cut-off drops it. */
  readonly socketBufferBytesMax: number;
  /** Time a connection without an Authorization header has to send its `auth` message. */
  readonly authTimeoutMs: number;
  /** Rows one subscribe may return as its initial result; past it the subscribe is refused. */
  readonly initialRowsMax: number;
  /** Encoded bytes of one `subscribed` message; past it the subscribe is refused. */
  readonly initialResultBytesMax: number;
  /** Rows examined to build one initial result (a predicate without a usable index scans). */
  readonly initialScanRowsMax: number;
  /** Transactions a resume may replay from the commitlog; further back gets a fresh result. */
  readonly resumeTxMax: number;
  /** Queries one subscribe message may carry. */
  readonly queriesPerSubscribeMax: number;
  /** Live queries per connection. */
  readonly queriesPerConnectionMax: number;
  /** Client messages received but not yet handled; past it a message is answered `busy`. */
  readonly inboundPendingMax: number;
  /** Open connections per server; past it the upgrade is refused with 503. */
  readonly connectionsMax: number;
  /**
   * Authenticated connections per tenant, so one tenant's clients cannot take every connection of
   * the server; past it the upgrade is refused with 503 (or the first auth message closed 1013).
   */
  readonly connectionsPerTenantMax: number;
  /** Server pings this often; a connection that missed the previous pong is terminated. */
  readonly pingIntervalMs: number;
  /** After a close frame is queued, the socket is destroyed if the peer has not closed by then. */
  readonly closeGraceMs: number;
}

export const wsLimitsDefault: WsLimits = {
  inboundMessageBytesMax: 64 * 1024,
  sendQueueBytesMax: 16 * 1024 * 1024,
  socketBufferBytesMax: 256 * 1024,
  authTimeoutMs: 10_000,
  initialRowsMax: 10_000,
  initialResultBytesMax: 8 * 1024 * 1024,
  initialScanRowsMax: 1_000_000,
  resumeTxMax: 10_000,
  queriesPerSubscribeMax: 100,
  queriesPerConnectionMax: 1_000,
  inboundPendingMax: 64,
  connectionsMax: 10_000,
  connectionsPerTenantMax: 1_000,
  pingIntervalMs: 30_000,
  closeGraceMs: 5_000,
};

/** Query ids are the client's names for its queries: short, printable, unique per connection. */
export const queryIdPattern = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Columns one `where` may constrain, and values one `in` may list. */
export const whereColumnsMax = 16;
export const inValuesMax = 1_000;
/** A string compared in a predicate (longer ones cannot equal a key column anyway). */
export const predicateStringCharsMax = 4096;
/** Characters of an access token in an `auth` message (JWTs from Keycloak are a few KB). */
export const authTokenCharsMax = 16 * 1024;
/** Row events held for queries whose subscribe is still starting (initial read, resume replay); past it 4008. */
export const startingEventsMax = 100_000;
