/**
 * `serve` wired to the real memory module: the tools, the resource catalog and
 * `openTenantMemory` from tools/index.ts, identity from server/auth, stores from the tenant
 * registry. Local mode (no issuer): one tenant `local` under `${dataDir}/tenants/local`.
 * Token mode: tokens verified per request (HTTP) or once from IOBOXX_TOKEN (stdio).
 */
import { MemoryError } from '../storage/errors.js';
import type { TenantMemory } from '../tools/memory.js';
import { memoryCatalog, memoryTools, openTenantMemory } from '../tools/index.js';
import { authenticateRequest } from './auth/http-auth.js';
import { serveProtectedResourceMetadata, type ProtectedResourceOptions } from './auth/protected-resource-metadata.js';
import { createAuthenticator } from './auth/authenticator.js';
import { authenticateEnvToken } from './auth/env-token.js';
import { localPrincipal } from './auth/local-principal.js';
import type { Principal } from './auth/principal.js';
import type { Config } from './config.js';
import { startHttpServer, type HttpServing } from './http/http-server.js';
import { fixedPrincipal, type Authenticate, type MemoryFor } from './http/seams.js';
import type { Logger } from './log.js';
import type { McpSurface, ToolCallEvent } from './mcp/surface.js';
import { serveMemoryStdio } from './stdio.js';
import { TenantRegistry } from './tenants/registry.js';
import { ensureTenantDir } from './tenants/tenant-dir.js';

export function memorySurface(log: Logger, onToolCall?: (event: ToolCallEvent) => void): McpSurface {
  return {
    tools: memoryTools,
    catalog: memoryCatalog,
    log,
    onToolCall:
      onToolCall ??
      ((e) =>
        log.debug(
          { tenant: e.principal.caller.tenant, subject: e.principal.caller.subject, tool: e.tool, outcome: e.outcome, offset: e.offset, durationMs: e.durationMs },
          'tool call',
        )),
  };
}

function tenantRegistry(config: Config, log: Logger): TenantRegistry<TenantMemory> {
  return new TenantRegistry<TenantMemory>({
    dataDir: config.dataDir,
    open: (tenant, dir) => openTenantMemory(dir, tenant),
    openTenantsMax: config.maxOpenTenants,
    observe: (event) => {
      const failed = 'error' in event;
      log[failed ? 'error' : 'info']({ tenant: event.tenant, ...('why' in event && { why: event.why }), ...(failed && { err: event.error }) }, `tenant store ${event.kind}`);
    },
  });
}

function registryMemoryFor(registry: TenantRegistry<TenantMemory>): MemoryFor {
  return async (principal) => {
    const lease = await registry.acquire(principal.caller.tenant);
    return { memory: lease.store, release: () => lease.release() };
  };
}

/** Serves one stdio connection; resolves when the client has gone and the store is closed. */
export async function serveStdioProcess(config: Config, log: Logger): Promise<void> {
  let principal: Principal;
  let revalidate: (() => Promise<void>) | undefined;
  if (config.auth === undefined) {
    principal = localPrincipal();
  } else {
    const tokenPrincipal = await authenticateEnvToken(config.token, createAuthenticator(config.auth), config.tenantSelection);
    principal = tokenPrincipal;
    // The token is fixed for the process: once it expires, every request is refused.
    revalidate = async () => {
      if (Date.now() >= tokenPrincipal.tokenExpiresAtMs) {
        throw new MemoryError('unauthenticated', 'IOBOXX_TOKEN has expired', 'restart the server with a fresh access token');
      }
    };
  }
  const tenant = principal.caller.tenant;
  // Opened on first use: the 2.x client's discover probe (a throwaway process) never opens it.
  let opening: Promise<TenantMemory> | undefined;
  const openMemory = () =>
    (opening ??= ensureTenantDir(config.dataDir, tenant).then(async (dir) => {
      try {
        const memory = await openTenantMemory(dir, tenant);
        log.info({ tenant, dir, lastOffset: memory.store.lastOffset }, 'tenant store open');
        return memory;
      } catch (error) {
        // The details (file, byte, repair command) go to the operator's log, not to the model.
        log.fatal({ err: error, dir }, 'tenant store cannot be opened');
        throw new MemoryError('unavailable', "the tenant's store cannot be opened; the server log says why", `run \`ioboxx-memory store verify ${dir}\``);
      }
    }));
  log.info({ mode: config.mode, tenant, dataDir: config.dataDir }, 'serving MCP over stdio');
  const serving = serveMemoryStdio({
    surface: memorySurface(log),
    principal,
    memory: openMemory,
    ...(revalidate !== undefined && { revalidate }),
  });
  // A desktop client may end us with a signal rather than by closing stdin: close cleanly.
  const stop = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'stopping');
    void serving.close();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await serving.closed;
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  if (opening !== undefined) await opening.then((memory) => memory.close(), () => undefined);
  log.info('stdio connection over; store closed');
}

export interface HttpProcess {
  readonly serving: HttpServing;
  close(): Promise<void>;
}

export async function serveHttpProcess(config: Config, log: Logger): Promise<HttpProcess> {
  const registry = tenantRegistry(config, log);
  let authenticate: Authenticate;
  let resource: ProtectedResourceOptions | undefined;
  if (config.auth === undefined) {
    authenticate = fixedPrincipal(localPrincipal());
  } else {
    const authenticator = createAuthenticator(config.auth);
    const protectedResource: ProtectedResourceOptions = {
      publicBaseUrl: config.http.publicUrl ?? `http://${config.http.host}:${config.http.port}`,
      authorizationServers: [config.auth.oidc.issuer],
      endpointNames: ['mcp', 'sse', 'messages'],
    };
    resource = protectedResource;
    authenticate = async (req) => {
      const result = await authenticateRequest(req, { authenticator, resource: protectedResource });
      return result.ok ? result.principal : result.failure;
    };
  }
  const serving = await startHttpServer({
    surface: memorySurface(log),
    authenticate,
    memoryFor: registryMemoryFor(registry),
    host: config.http.host,
    port: config.http.port,
    allowedOrigins: config.http.allowedOrigins,
    // RFC 9728 metadata is public and fetched cross-origin by browser clients: before the Origin guard.
    ...(resource !== undefined && {
      mountBeforeGuards: (app) =>
        app.use((req, res, next) => {
          if (!serveProtectedResourceMetadata(req, res, resource)) next();
        }),
    }),
  });
  log.info({ mode: config.mode, url: serving.url, dataDir: config.dataDir }, 'serving MCP over HTTP (/mcp, /sse)');
  return {
    serving,
    close: async () => {
      await serving.close();
      await registry.close();
    },
  };
}
