/**
 * The token each open connection presented last, with its SHA-256 digest. A keep-alive client
 * sends the byte-identical access token on every request; when a connection presents the same
 * string again (string equality), the token's shape check and its hash are not redone. That is
 * all this memo skips: the digest is then looked up in the remembered verifications
 * (verified-token-cache.ts) exactly as a freshly computed one would be, so `exp`, `nbf`, the
 * key-set rules and the time to live are still checked on every request.
 *
 * Unlike the remembered verifications, this memo holds the token itself. It is kept to the
 * connection that sent it, which already carries those bytes in every request it makes:
 * - the entry is reachable only through its connection object (a WeakMap keyed by it), so no
 *   other connection can ever be given it;
 * - it is deleted when the connection closes, and never written for a connection already
 *   closed, so it does not outlive the connection (nor wait for the collector to notice);
 * - one entry per connection: presenting another token replaces it, so the bound is the
 *   server's number of open connections.
 * Only the verifier writes entries, each with the digest it computed from that very token.
 * Behind a proxy that carries several clients' requests on one connection, tokens alternate and
 * the memo simply misses (a digest is only ever given for the string it was computed from).
 */

/** What the memo needs of a connection (a net.Socket is one). */
export interface TokenConnection {
  readonly destroyed: boolean;
  once(event: 'close', listener: () => void): unknown;
}

interface Presented {
  readonly token: string;
  readonly digest: string;
}

export class ConnectionTokenMemo {
  private readonly byConnection = new WeakMap<TokenConnection, Presented>();
  private connections = 0;

  /** Open connections holding an entry. */
  get size(): number {
    return this.connections;
  }

  has(connection: TokenConnection): boolean {
    return this.byConnection.has(connection);
  }

  /** The digest of `token` when `connection` presented this very token last, else undefined. */
  digestOf(connection: TokenConnection, token: string): string | undefined {
    const presented = this.byConnection.get(connection);
    return presented !== undefined && presented.token === token ? presented.digest : undefined;
  }

  /** `digest` must be the SHA-256 the verifier computed from `token`. */
  remember(connection: TokenConnection, token: string, digest: string): void {
    // A closed connection will not emit 'close' again: an entry for it would never be deleted.
    if (connection.destroyed) return;
    if (!this.byConnection.has(connection)) {
      this.connections += 1;
      connection.once('close', () => {
        if (this.byConnection.delete(connection)) this.connections -= 1;
      });
    }
    this.byConnection.set(connection, { token, digest });
  }
}
