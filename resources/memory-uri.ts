/**
 * memory:// URIs: `memory://{kind}/{id}` with the id percent-encoded. Parsing is strict:
 * the scheme, a known kind, exactly one id segment that decodes to an id matching the
 * kind's pattern, no query, no fragment. A URI is never turned into a path.
 */
import { MemoryError } from '../storage/errors.js';
import { objectIdPattern, rowIdPattern, typeNamePattern } from '../tools/identifiers.js';

export const memoryScheme = 'memory://';
export const uriCharsMax = 512;

export const resourceKinds = ['objects', 'types', 'chat', 'bpmn', 'sessions', 'ar'] as const;
export type ResourceKind = (typeof resourceKinds)[number];

const idPatterns: Record<ResourceKind, RegExp> = {
  objects: objectIdPattern,
  types: typeNamePattern,
  chat: rowIdPattern,
  bpmn: rowIdPattern,
  sessions: rowIdPattern,
  ar: rowIdPattern,
};

export interface MemoryUri {
  readonly kind: ResourceKind;
  readonly id: string;
}

export function formatMemoryUri(kind: ResourceKind, id: string): string {
  return `${memoryScheme}${kind}/${encodeURIComponent(id)}`;
}

export function parseMemoryUri(uri: string): MemoryUri {
  if (uri.length > uriCharsMax) throw new MemoryError('invalid_argument', `URI longer than ${uriCharsMax} characters`);
  if (!uri.startsWith(memoryScheme)) throw new MemoryError('invalid_argument', `not a ${memoryScheme} URI: ${JSON.stringify(uri.slice(0, 64))}`);
  const rest = uri.slice(memoryScheme.length);
  if (/[?#]/.test(rest)) throw new MemoryError('invalid_argument', 'memory URIs take no query or fragment');
  const parts = rest.split('/');
  if (parts.length !== 2 || parts[1] === '') {
    throw new MemoryError('invalid_argument', `expected ${memoryScheme}{kind}/{id}`, `kinds: ${resourceKinds.join(', ')}`);
  }
  const [kind, encodedId] = parts as [string, string];
  if (!(resourceKinds as readonly string[]).includes(kind)) {
    throw new MemoryError('not_found', `no resource kind ${JSON.stringify(kind.slice(0, 64))}`, `kinds: ${resourceKinds.join(', ')}`);
  }
  let id: string;
  try {
    id = decodeURIComponent(encodedId);
  } catch {
    throw new MemoryError('invalid_argument', 'URI id is not valid percent-encoding');
  }
  if (!idPatterns[kind as ResourceKind].test(id)) throw new MemoryError('invalid_argument', `malformed ${kind} id in URI`);
  return { kind: kind as ResourceKind, id };
}
