/**
 * resources/templates/list, resources/list (paged by the catalog), resources/read, and the
 * legacy resources/subscribe + unsubscribe. All need the read capability. The catalog owns
 * URIs and cursors; this file owns capability checks, bounds and the error mapping.
 */
import type { Server } from '@modelcontextprotocol/server';
import { MemoryError } from '../../storage/errors.js';
import type { Principal } from '../auth/principal.js';
import { afterAnswer } from './after-answer.js';
import { reportedByHandler } from './request-audit.js';
import type { WithMemory } from './memory-source.js';
import { errorBodyOf, protocolErrorOf } from './error-mapping.js';
import { resourceSubscriptionsPerSessionMax } from './limits.js';
import { checkSubscriptionUri, checkUriLength } from './resource-uris.js';
import { refuseCursorOfSinglePageList } from './single-page-list.js';
import type { CallOutcome, McpSurface, ResourceRequestEvent } from './surface.js';
import { progressRequestOf, withOpenProgress } from './progress-notifications.js';

function requireRead(principal: Principal): void {
  if (!principal.capabilities.has('read')) {
    throw new MemoryError('forbidden', 'reading resources needs the read capability, which this caller does not have');
  }
}

/** Runs a resource request; every failure leaves as a JSON-RPC error carrying {error}. */
async function answering<T>(
  surface: McpSurface,
  revalidate: (() => Promise<void>) | undefined,
  work: () => Promise<T>,
  uri?: string,
): Promise<T> {
  try {
    await revalidate?.();
    return await work();
  } catch (error) {
    const { body, isInternal } = errorBodyOf(error);
    if (isInternal) surface.log.error({ err: error }, 'resource request failed');
    throw protocolErrorOf(body, uri);
  }
}

function outcomeOf(error: unknown): CallOutcome {
  return errorBodyOf(error).body.code;
}

/** Runs `work` and reports it to the access log's hook once answered, allowed or refused (DESIGN §2.7). */
async function audited<T>(surface: McpSurface, principal: Principal, method: ResourceRequestEvent['method'], target: string, work: () => Promise<T>): Promise<T> {
  const startedMs = performance.now();
  let outcome: CallOutcome = 'ok';
  try {
    return await work();
  } catch (error) {
    outcome = outcomeOf(error);
    throw error;
  } finally {
    const onResourceRequest = surface.onResourceRequest;
    if (onResourceRequest !== undefined) {
      const event = { principal, method, target, outcome, durationMs: performance.now() - startedMs };
      afterAnswer(surface.log, 'onResourceRequest', () => onResourceRequest(event));
    }
  }
}

export function registerResourceHandlers(
  server: Server,
  surface: McpSurface,
  principal: Principal,
  withMemory: WithMemory,
  subscribed: Set<string>,
  revalidate?: () => Promise<void>,
): void {
  const { catalog } = surface;
  /** Reports the request once answered (and tells the request tap it need not). */
  const auditedRequest = <T>(id: string | number, method: ResourceRequestEvent['method'], target: string, work: () => Promise<T>) => {
    reportedByHandler(server, id);
    return audited(surface, principal, method, target, work);
  };

  server.setRequestHandler('resources/templates/list', (request) =>
    answering(surface, revalidate, async () => {
      requireRead(principal);
      refuseCursorOfSinglePageList('resources/templates/list', request.params?.cursor);
      return { resourceTemplates: catalog.templates.map((t) => ({ ...t })) };
    }),
  );

  server.setRequestHandler('resources/list', (request, ctx) =>
    answering(surface, revalidate, () => auditedRequest(ctx.mcpReq.id, 'resources/list', request.params?.cursor ?? '-', async () => {
      requireRead(principal);
      const page = await withOpenProgress(surface.openProgress, principal.caller.tenant, progressRequestOf(request.params, ctx), () =>
        withMemory((memory) => catalog.list(memory, request.params?.cursor)));
      return { resources: page.resources, ...(page.nextCursor !== undefined && { nextCursor: page.nextCursor }) };
    })),
  );

  server.setRequestHandler('resources/read', (request, ctx) =>
    answering(surface, revalidate, () => auditedRequest(ctx.mcpReq.id, 'resources/read', request.params.uri, async () => {
      const uri = request.params.uri;
      requireRead(principal);
      checkUriLength(uri);
      const content = await withOpenProgress(surface.openProgress, principal.caller.tenant, progressRequestOf(request.params, ctx), () =>
        withMemory((memory) => catalog.read(memory, uri)));
      return { contents: [{ ...content }] };
    }), request.params.uri),
  );

  server.setRequestHandler('resources/subscribe', (request, ctx) =>
    answering(surface, revalidate, () => auditedRequest(ctx.mcpReq.id, 'resources/subscribe', request.params.uri, async () => {
      requireRead(principal);
      // A URI no resource can have would only use up the quota; one in another form would never fire.
      checkSubscriptionUri(catalog, request.params.uri);
      if (!subscribed.has(request.params.uri) && subscribed.size >= resourceSubscriptionsPerSessionMax) {
        throw new MemoryError(
          'limit_exceeded',
          `this session already holds ${subscribed.size} resource subscriptions (resourceSubscriptionsPerSessionMax)`,
          'unsubscribe from resources you no longer watch',
        );
      }
      // The store must be reachable; and memory opened on first use (stdio) starts the change feed as it opens.
      await withMemory(async () => undefined);
      subscribed.add(request.params.uri);
      return {};
    })),
  );

  server.setRequestHandler('resources/unsubscribe', (request, ctx) =>
    answering(surface, revalidate, () => auditedRequest(ctx.mcpReq.id, 'resources/unsubscribe', request.params.uri, async () => {
      subscribed.delete(request.params.uri);
      return {};
    })),
  );
}
