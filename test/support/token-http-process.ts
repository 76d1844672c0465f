/**
 * The real HTTP process (serveHttpProcess: the real memory module and tenant registry) trusting
 * a fresh test issuer process, over a fresh data directory: for end-to-end tests with bearer tokens.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../server/config.js';
import { silentLogger, type Logger } from '../../server/log.js';
import { serveHttpProcess, type HttpProcess } from '../../server/main-wiring.js';
import { oidcEnvForIssuer, startOidcIssuer, type OidcIssuerProcess } from './oidc-issuer.js';

export interface TokenHttpProcess {
  readonly idp: OidcIssuerProcess;
  readonly server: HttpProcess;
  /** The server's base URL (append /mcp, /sse, /ws). */
  readonly base: string;
  /** Closes the server, stops the issuer, removes the data directory. */
  stop(): Promise<void>;
}

export interface TokenHttpOptions {
  readonly openTenantsMax: number;
  readonly log?: Logger;
  /** Further IOBOXX_* settings (e.g. IOBOXX_STORES_MEMORY_BYTES_MAX, IOBOXX_TENANT_SLOT_WAIT_MS), or settings made from the issuer. */
  readonly env?: Readonly<Record<string, string>> | ((idp: OidcIssuerProcess) => Readonly<Record<string, string>>);
}

export async function startTokenHttpProcess(options: TokenHttpOptions): Promise<TokenHttpProcess> {
  const idp = await startOidcIssuer();
  const dataDir = await mkdtemp(path.join(tmpdir(), 'ioboxx-token-http-'));
  const config = loadConfig({
    ...oidcEnvForIssuer(idp),
    IOBOXX_DATA_DIR: dataDir,
    IOBOXX_HTTP_PORT: '0',
    IOBOXX_MAX_OPEN_TENANTS: String(options.openTenantsMax),
    IOBOXX_LOG_LEVEL: 'error',
    ...(typeof options.env === 'function' ? options.env(idp) : options.env),
  });
  const server = await serveHttpProcess(config, options.log ?? silentLogger());
  return {
    idp,
    server,
    base: server.serving.url,
    stop: async () => {
      await server.close();
      await idp.stop();
      // A control plane whose embedded PGlite was still starting when the server closed (it waits
      // closeConnectWaitMs for it) shuts that database down on its own a little later: retry the rm
      // (ENOTEMPTY while it writes its last files) instead of failing a passed test's teardown.
      await rm(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    },
  };
}
