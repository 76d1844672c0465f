/**
 * What JSON.stringify and the zod schemas do not refuse clearly, checked once over a call's
 * arguments before anything else reads them:
 *  - nesting deeper than toolArgumentsDepthMax: recursive code further on (the size check's
 *    stringify, normalising, the row codec) would overflow the stack, and the caller would get
 *    an internal error instead of a named limit;
 *  - strings or keys with a lone UTF-16 surrogate: UTF-8 (the log, msgpack) has no form for one,
 *    so it would be stored as U+FFFD, silently: two different ids or idempotency keys would become
 *    one. Refused instead, naming where;
 *  - the key "__proto__": a plain object cannot hold it as data, so normalising drops it (and
 *    msgpack renames it): the write would be acknowledged without it, and a retry with the same
 *    idempotency key would no longer match its first call. Refused instead, naming where.
 * Iterative (an explicit stack), so the check itself cannot overflow.
 */
import { toolArgumentsDepthMax } from './limits.js';

/** A lone surrogate: with the u flag a proper pair is one code point, not \p{Cs}. */
const loneSurrogate = /\p{Cs}/u;

export interface ShapeProblem {
  readonly code: 'limit_exceeded' | 'invalid_argument';
  readonly message: string;
  readonly hint: string;
}

const unicodeHint = 'send well-formed Unicode text';

/** The first problem in `args`, or undefined when there is none. */
export function argumentsShapeProblem(args: unknown): ShapeProblem | undefined {
  const stack: { value: unknown; path: string; depth: number }[] = [{ value: args, path: '', depth: 0 }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value, path, depth } = item;
    if (typeof value === 'string') {
      if (loneSurrogate.test(value)) return { code: 'invalid_argument', message: `the string at ${path || 'arguments'} holds a lone UTF-16 surrogate (not valid Unicode text)`, hint: unicodeHint };
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth >= toolArgumentsDepthMax) {
      return { code: 'limit_exceeded', message: `arguments nest deeper than ${toolArgumentsDepthMax} levels at ${path}; the limit (toolArgumentsDepthMax) is ${toolArgumentsDepthMax}`, hint: 'flatten the value: store deep structures as a string' };
    }
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], path: `${path}[${i}]`, depth: depth + 1 });
      continue;
    }
    for (const [key, child] of Object.entries(value)) {
      if (loneSurrogate.test(key)) return { code: 'invalid_argument', message: `a key in ${path || 'arguments'} holds a lone UTF-16 surrogate (not valid Unicode text)`, hint: unicodeHint };
      if (key === '__proto__') return { code: 'invalid_argument', message: `${path || 'arguments'} has the key "__proto__", which cannot be stored as data`, hint: 'rename the key' };
      stack.push({ value: child, path: `${path}.${key}`, depth: depth + 1 });
    }
  }
  return undefined;
}
