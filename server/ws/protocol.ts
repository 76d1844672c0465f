/**
 * The messages of protocol `ioboxx.v1` (PROTOCOL.md is the prose of this file). Client
 * messages are checked here, on the way in, before anything acts on them; server messages
 * are built by the connection from the shapes below.
 */
import { MemoryError, type MemoryErrorCode } from '../../storage/errors.js';
import { historyIdPattern } from '../../storage/history.js';
import { isJsonObject } from '../../storage/json-object.js';
import { errorBodyOf } from '../mcp/error-mapping.js';
import { authTokenCharsMax, queryIdPattern, type WsLimits } from './limits.js';

export interface QuerySpec {
  readonly id: string;
  readonly table: string;
  readonly where?: unknown;
}

export type ClientMessage =
  | { readonly type: 'auth'; readonly token: string }
  | { readonly type: 'subscribe'; readonly queries: readonly QuerySpec[]; readonly after?: number; readonly history?: string }
  | { readonly type: 'unsubscribe'; readonly ids: readonly string[] }
  | { readonly type: 'ping' };

export interface ErrorMessage {
  readonly type: 'error';
  readonly code: MemoryErrorCode;
  readonly message: string;
  readonly hint?: string;
  /** The query ids the error is about (a refused subscribe names its queries). */
  readonly ids?: readonly string[];
}

const tableNameCharsMax = 63;

function invalid(message: string): MemoryError {
  return new MemoryError('invalid_argument', message);
}

/**
 * Refuses a key the message or query does not have: a misspelt `where` (`"were"`) or `after`
 * was ignored, and the subscribe served every row, or a fresh result, as if asked for.
 */
function onlyKeys(value: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) throw invalid(`${where}: unknown key ${JSON.stringify(key).slice(0, 70)} (keys: ${keys.join(', ')})`);
  }
}

function queryId(value: unknown, where: string): string {
  if (typeof value !== 'string' || !queryIdPattern.test(value)) throw invalid(`${where}: a query id is 1-64 of A-Z a-z 0-9 _ . : -`);
  return value;
}

export function parseClientMessage(value: unknown, limits: WsLimits): ClientMessage {
  if (!isJsonObject(value)) throw invalid('a message is an object with a type');
  switch (value['type']) {
    case 'auth': {
      const token = value['token'];
      if (typeof token !== 'string' || token.length === 0) throw invalid('auth: token must be a non-empty string');
      if (token.length > authTokenCharsMax) throw new MemoryError('limit_exceeded', `auth: token longer than ${authTokenCharsMax} characters`);
      return { type: 'auth', token };
    }
    case 'subscribe': {
      onlyKeys(value, ['type', 'queries', 'after', 'history'], 'subscribe');
      const raw = value['queries'];
      if (!Array.isArray(raw) || raw.length === 0) throw invalid('subscribe: queries must be a non-empty list');
      if (raw.length > limits.queriesPerSubscribeMax) {
        throw new MemoryError('limit_exceeded', `subscribe: more than ${limits.queriesPerSubscribeMax} queries`);
      }
      const ids = new Set<string>();
      const queries = raw.map((q, index): QuerySpec => {
        if (!isJsonObject(q)) throw invalid(`subscribe: queries[${index}] must be an object`);
        onlyKeys(q, ['id', 'table', 'where'], `subscribe: queries[${index}]`);
        const id = queryId(q['id'], `subscribe: queries[${index}].id`);
        if (ids.has(id)) throw invalid(`subscribe: query id ${id} given twice`);
        ids.add(id);
        const table = q['table'];
        if (typeof table !== 'string' || table.length === 0 || table.length > tableNameCharsMax) {
          throw invalid(`subscribe: queries[${index}].table must be a table name`);
        }
        return q['where'] === undefined ? { id, table } : { id, table, where: q['where'] };
      });
      const after = value['after'];
      const history = value['history'];
      if (after === undefined || after === null) {
        if (history !== undefined && history !== null) throw invalid('subscribe: history goes with after (the history of that offset, from subscribed), not alone');
        return { type: 'subscribe', queries };
      }
      if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < -1) {
        throw invalid('subscribe: after must be the offset of the last transaction applied (an integer >= -1)');
      }
      if (history === undefined || history === null) return { type: 'subscribe', queries, after };
      if (typeof history !== 'string' || !historyIdPattern.test(history)) {
        throw invalid('subscribe: history must be the "history" of the subscribed message your offset came from (32 hex digits)');
      }
      return { type: 'subscribe', queries, after, history };
    }
    case 'unsubscribe': {
      onlyKeys(value, ['type', 'ids'], 'unsubscribe');
      const raw = value['ids'];
      if (!Array.isArray(raw) || raw.length === 0) throw invalid('unsubscribe: ids must be a non-empty list');
      if (raw.length > limits.queriesPerConnectionMax) throw new MemoryError('limit_exceeded', `unsubscribe: more than ${limits.queriesPerConnectionMax} ids`);
      return { type: 'unsubscribe', ids: raw.map((id, index) => queryId(id, `unsubscribe: ids[${index}]`)) };
    }
    case 'ping':
      return { type: 'ping' };
    default:
      throw invalid(typeof value['type'] === 'string'
        ? `unknown message type ${JSON.stringify(value['type']).slice(0, 40)} (auth, subscribe, unsubscribe, ping)`
        : 'a message is an object with a string type: auth, subscribe, unsubscribe or ping');
  }
}

export function errorMessage(error: unknown, ids?: readonly string[]): ErrorMessage {
  const base = { type: 'error' as const, ...errorBodyOf(error).body };
  return ids && ids.length > 0 ? { ...base, ids } : base;
}
