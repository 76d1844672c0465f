/**
 * Every MCP request gets an audit event (DESIGN invariant 7), not only the ones our handlers
 * answer: `initialize`, `ping`, `tools/list`, `server/discover`, a method nobody serves, a
 * tools/call the SDK refused before our handler saw it. The tap sits on the connection's
 * transport, where every request comes in and every answer goes out, whoever answers it.
 *
 * tools/call and the resource requests report themselves, with more than the tap can know
 * (object ids, the commit offset): their handlers mark the request (`reportedByHandler`), and
 * the tap leaves those alone. A transport's direct path for tools/call never reaches the tap;
 * its calls report themselves the same way. A 2026-era `subscriptions/listen` is answered by the
 * SDK's listen router, never by a server: the routes check it (checkedListen) before handing it on.
 */
import type { JSONRPCMessage, Server, Transport } from '@modelcontextprotocol/server';
import type { Principal } from '../auth/principal.js';
import { afterAnswer } from './after-answer.js';
import { listenUrisProblem } from './resource-uris.js';
import type { McpRequestEvent, McpSurface } from './surface.js';

type RequestId = string | number;

/**
 * Requests of one connection awaiting their answer. A client may send many before reading any
 * answer; past this many, a request is reported at once with outcome `received` (its answer
 * unknown) instead of being held.
 */
export const requestsAwaitingAnswerMax = 4_096;

interface AwaitedRequest {
  readonly method: string;
  readonly startedMs: number;
  /** Set by the handler that reports the request itself (tools/call, resources/*). */
  reportedByHandler: boolean;
}

const awaitedOf = new WeakMap<Server, Map<RequestId, AwaitedRequest>>();

/** The request `id` on `server`'s connection is reported by its handler: the tap skips it. */
export function reportedByHandler(server: Server, id: RequestId): void {
  const awaited = awaitedOf.get(server)?.get(id);
  if (awaited !== undefined) awaited.reportedByHandler = true;
}

/**
 * Wraps `server.connect` so that each transport it is given is tapped before the Protocol
 * attaches: the Protocol chains to a transport's existing `onmessage` and `onclose`, and sends
 * through `transport.send`, so the tap sees both directions. No-op without an onRequest hook.
 */
export function tapRequests(server: Server, surface: McpSurface, principal: Principal): void {
  if (surface.onRequest === undefined) return;
  const awaited = new Map<RequestId, AwaitedRequest>();
  awaitedOf.set(server, awaited);
  const report = (method: string, outcome: string, startedMs: number) =>
    reportRequest(surface, { principal, method, outcome, durationMs: performance.now() - startedMs });

  const connect = server.connect.bind(server);
  server.connect = async (transport: Transport) => {
    const received = transport.onmessage;
    transport.onmessage = (message, extra) => {
      const request = requestOf(message);
      if (request !== undefined) {
        if (awaited.size < requestsAwaitingAnswerMax) {
          awaited.set(request.id, { method: request.method, startedMs: performance.now(), reportedByHandler: false });
        } else {
          report(request.method, 'received', performance.now());
        }
      }
      received?.(message, extra);
    };
    const send = transport.send.bind(transport);
    transport.send = (message, options) => {
      const answered = answerOf(message);
      if (answered !== undefined) {
        const request = awaited.get(answered.id);
        if (request !== undefined) {
          awaited.delete(answered.id);
          if (!request.reportedByHandler) report(request.method, answered.outcome, request.startedMs);
        }
      }
      return send(message, options);
    };
    const closed = transport.onclose;
    transport.onclose = () => {
      // Requests the connection ended before answering were still requests: reported as such.
      for (const request of awaited.values()) if (!request.reportedByHandler) report(request.method, 'no_answer', request.startedMs);
      awaited.clear();
      closed?.();
    };
    await connect(transport);
  };
}

function requestOf(message: JSONRPCMessage): { id: RequestId; method: string } | undefined {
  const m = message as { id?: unknown; method?: unknown };
  if (typeof m.method !== 'string') return undefined;
  if (typeof m.id !== 'string' && typeof m.id !== 'number') return undefined; // a notification
  return { id: m.id, method: m.method };
}

/** A response's id and outcome: `ok`, our error code when the error carries one, else the JSON-RPC code's name. */
function answerOf(message: JSONRPCMessage): { id: RequestId; outcome: string } | undefined {
  const m = message as { id?: unknown; method?: unknown; result?: unknown; error?: { code?: unknown; data?: unknown } };
  if (m.method !== undefined || (typeof m.id !== 'string' && typeof m.id !== 'number')) return undefined;
  if (m.error === undefined) return m.result === undefined ? undefined : { id: m.id, outcome: 'ok' };
  const ours = (m.error.data as { error?: { code?: unknown } } | undefined)?.error?.code;
  return { id: m.id, outcome: typeof ours === 'string' ? ours : jsonRpcOutcome(m.error.code) };
}

const jsonRpcOutcomes: Readonly<Record<number, string>> = {
  [-32700]: 'parse_error',
  [-32600]: 'invalid_request',
  [-32601]: 'method_not_found',
  [-32602]: 'invalid_argument',
  [-32603]: 'internal',
};

function jsonRpcOutcome(code: unknown): string {
  return typeof code === 'number' ? jsonRpcOutcomes[code] ?? `jsonrpc_${code}` : 'internal';
}

/**
 * What is wrong with a subscriptions/listen request (listenUrisProblem), or undefined; either
 * way the request is reported, with its resource URIs, as the routes see it before the SDK's
 * listen router takes it (`ok`: passed our checks and handed on).
 */
export function checkedListen(surface: McpSurface, principal: Principal, message: unknown): string | undefined {
  const problem = listenUrisProblem(surface.catalog, message);
  const uris = (message as { params?: { notifications?: { resourceSubscriptions?: unknown } } } | null)?.params?.notifications?.resourceSubscriptions;
  const target = Array.isArray(uris) ? uris.filter((uri) => typeof uri === 'string').join(' ') : '';
  reportRequest(surface, { principal, method: 'subscriptions/listen', target: target || '-', outcome: problem === undefined ? 'ok' : 'invalid_argument', durationMs: 0 });
  return problem;
}

/** Hands `event` to the surface's onRequest hook once the current answer is sent (a throw is logged). */
export function reportRequest(surface: McpSurface, event: McpRequestEvent): void {
  const onRequest = surface.onRequest;
  if (onRequest !== undefined) afterAnswer(surface.log, 'onRequest', () => onRequest(event));
}
