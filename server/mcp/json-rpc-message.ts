/**
 * What makes a parsed body a JSON-RPC 2.0 message the SDK accepts, for the transports that
 * answer the rest themselves: JSON-RPC 2.0 says a body that is JSON but not a valid message is
 * an Invalid Request (-32600, with the id when one can be read), not a Parse error (-32700,
 * which is for text that is not JSON). stdio (stdio-transport.ts) and a 2025-era HTTP session
 * (streamable-route.ts) answer alike.
 */
import {
  isJSONRPCErrorResponse,
  isJSONRPCNotification,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  type JSONRPCRequest,
} from '@modelcontextprotocol/server';
import { isJsonObject } from '../../storage/json-object.js';

/** JSON-RPC answers carry `id: null` when the id could not be read; the SDK's types leave that out. */
export type AnswerId = JSONRPCRequest['id'] | null;

export const invalidRequestMessage = 'Invalid Request: not a JSON-RPC 2.0 request, notification or response the server accepts';

/** The id of a message that failed the schema, when it has one JSON-RPC allows; null otherwise. */
export function readableIdOf(body: unknown): AnswerId {
  if (!isJsonObject(body)) return null;
  const id = body['id'];
  return typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id)) ? id : null;
}

/** One message as the SDK's JSONRPCMessageSchema takes it (the union of these four schemas). */
export function isJsonRpcMessage(body: unknown): boolean {
  return isJSONRPCRequest(body) || isJSONRPCNotification(body) || isJSONRPCResultResponse(body) || isJSONRPCErrorResponse(body);
}

/**
 * An HTTP POST body (one message, or a batch of them) the SDK would refuse as a whole: the id
 * and message of its Invalid Request answer, or undefined when every message is acceptable.
 * A batch answers with one error, id null: it is refused before any of its messages is served.
 */
export function invalidPostBody(body: unknown): { readonly id: AnswerId; readonly message: string } | undefined {
  if (!Array.isArray(body)) return isJsonRpcMessage(body) ? undefined : { id: readableIdOf(body), message: invalidRequestMessage };
  if (body.length === 0) return { id: null, message: 'Invalid Request: an empty batch (JSON-RPC 2.0 wants at least one message)' };
  const at = body.findIndex((message) => !isJsonRpcMessage(message));
  return at === -1 ? undefined : { id: null, message: `Invalid Request: batch message ${at} is not a JSON-RPC 2.0 request, notification or response the server accepts` };
}

/**
 * The protocol revision that removed JSON-RPC batches from MCP: a session that negotiated it or a
 * later one is sent one message per POST (revisions are ISO dates, so they order as strings).
 */
export const batchesRemovedInVersion = '2025-06-18';

/** Why a batch is refused on a session of `protocolVersion`, or undefined when that revision still has batches. */
export function batchRefusal(protocolVersion: string | undefined): string | undefined {
  if (protocolVersion === undefined || protocolVersion < batchesRemovedInVersion) return undefined;
  return `Invalid Request: JSON-RPC batches are not part of MCP ${protocolVersion} (removed in ${batchesRemovedInVersion}); send each message in its own POST`;
}
