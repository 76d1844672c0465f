/**
 * Which incoming messages a transport may hand to our own code without the SDK's message
 * schemas: the shapes those schemas accept unchanged, recognised with plain checks. Everything
 * else goes through the SDK untouched, so every refusal (and every unusual but valid message)
 * stays the SDK's own.
 */
import { ProtocolErrorCode, type JSONRPCMessage, type JSONRPCRequest } from '@modelcontextprotocol/server';
import type { ToolCaller } from './tool-calls.js';
import { isJsonObject } from '../../storage/json-object.js';

/** Keys a JSON-RPC request may carry (the SDK's request schema is strict). */
const requestKeys = new Set(['jsonrpc', 'id', 'method', 'params']);

/** A JSON-RPC id or a progress token as the SDK's schemas take them: a string or a safe integer (zod's `int()`). */
function isIdLike(value: unknown): value is string | number {
  return typeof value === 'string' || Number.isSafeInteger(value);
}

/**
 * The body as a request the SDK's own schema accepts unchanged (JSONRPCRequestSchema: strict
 * object, jsonrpc "2.0", string or integer id, string method, optional object params), or
 * undefined. A `_meta` is taken when it carries a progress token the SDK's schema accepts (a
 * client's `onprogress`), beside keys of the client's own, which that loose schema passes on
 * unchecked; one without a token, or with a key of MCP's reserved `io.modelcontextprotocol/`
 * namespace (the SDK reads some of those), is left to the SDK.
 */
export function directRequestOf(body: unknown): JSONRPCRequest | undefined {
  if (!isJsonObject(body)) return undefined;
  for (const key in body) if (!requestKeys.has(key)) return undefined;
  if (body['jsonrpc'] !== '2.0' || typeof body['method'] !== 'string' || body['method'] === 'initialize') return undefined;
  if (!isIdLike(body['id'])) return undefined;
  const params = body['params'];
  if (params !== undefined) {
    if (!isJsonObject(params)) return undefined;
    if ('_meta' in params && !isProgressMeta(params['_meta'])) return undefined;
  }
  return body as unknown as JSONRPCRequest;
}

/** The namespace of `_meta` keys MCP reserves for itself. */
const reservedMetaPrefix = 'io.modelcontextprotocol/';

/** `_meta` holding a progress token, and otherwise only keys of the client's own. */
function isProgressMeta(meta: unknown): boolean {
  if (!isJsonObject(meta)) return false;
  for (const key in meta) if (key.startsWith(reservedMetaPrefix) || key === '__proto__') return false;
  return isIdLike(meta['progressToken']);
}

/** The progress token a request's params carry (`_meta.progressToken`, as the SDK's schema takes one), or undefined. */
export function progressTokenOf(params: unknown): string | number | undefined {
  if (!isJsonObject(params)) return undefined;
  const meta = params['_meta'];
  if (!isJsonObject(meta)) return undefined;
  const token = meta['progressToken'];
  return isIdLike(token) ? token : undefined;
}

/** A tools/call as our tool-call code takes it. */
export interface DirectToolCall {
  readonly name: string;
  readonly args: Record<string, unknown> | undefined;
}

/**
 * Keys of tools/call params taken directly; `task` needs the SDK's schemas, and a call with
 * `_meta` (a progress token) goes to the server, whose tools/call handler sends its progress.
 */
const toolCallParamKeys = new Set(['name', 'arguments']);

/**
 * A request (from directRequestOf) as a tools/call the 2025-era CallToolRequestSchema accepts
 * unchanged: params holding a string `name` and, optionally, an object `arguments`, nothing
 * else (the schema would strip or check any other key). Undefined otherwise.
 */
export function directToolCallOf(request: JSONRPCRequest): DirectToolCall | undefined {
  if (request.method !== 'tools/call') return undefined;
  const params: unknown = request.params;
  if (!isJsonObject(params)) return undefined;
  for (const key in params) if (!toolCallParamKeys.has(key)) return undefined;
  const name = params['name'];
  const args = params['arguments'];
  if (typeof name !== 'string') return undefined;
  if (args !== undefined && !isJsonObject(args)) return undefined;
  return { name, args };
}

/**
 * The answer to a direct tools/call, as the SDK would send it: `{result, jsonrpc, id}`. The tool
 * caller never throws (every failure is an isError result); if it did, `onThrow` hears of it and
 * the answer is the SDK's answer to a handler's throw. Both transports' direct paths use this.
 */
export async function directToolAnswer(
  callTool: ToolCaller,
  call: DirectToolCall,
  id: JSONRPCRequest['id'],
  onThrow: (error: Error) => void,
): Promise<JSONRPCMessage> {
  try {
    return { result: await callTool(call.name, call.args), jsonrpc: '2.0', id } as JSONRPCMessage;
  } catch (error) {
    onThrow(error instanceof Error ? error : new Error(String(error)));
    return { jsonrpc: '2.0', id, error: { code: ProtocolErrorCode.InternalError, message: 'Internal error' } };
  }
}
