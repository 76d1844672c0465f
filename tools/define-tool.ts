/**
 * How a ToolDef is made: a write tool from its reducer (input = reducer args + an optional
 * idempotency key, output = reducer result + commit offset), a read tool from a function
 * over the store's durable view. Both check their arguments on the way in (the server
 * checks too: both sides of the boundary) and bound their result on the way out.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { MemoryError } from '../storage/errors.js';
import type { ReducerDef } from '../storage/reducer.js';
import { resultBytesMax, toolArgumentsBytesMax, type Capability, type ToolAnnotations, type ToolContext, type ToolDef } from './tool.js';
import { jsonBytes } from './json-bytes.js';
import { strictArguments } from './strict-arguments.js';
import { int } from './wire-schema.js';

export const idempotencyKeyCharsMax = 128;
/** Zod issues quoted in an invalid_argument message; the rest are counted. */
const issuesQuotedMax = 4;

export const idempotencyKey = z.string().min(1).max(idempotencyKeyCharsMax);

const readAnnotations: ToolAnnotations = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };

/** Parse raw tool arguments; every failure is invalid_argument naming the offending paths. */
export function parseToolInput<S extends z.ZodType>(tool: string, schema: S, raw: unknown): z.infer<S> {
  const text = JSON.stringify(raw ?? {});
  const bytes = text === undefined ? 0 : Buffer.byteLength(text, 'utf8');
  if (text === undefined || bytes > toolArgumentsBytesMax) {
    throw new MemoryError('limit_exceeded', `${tool}: arguments are ${bytes} bytes of JSON; the limit (toolArgumentsBytesMax) is ${toolArgumentsBytesMax}`,
      'send less per call: split the work into several calls');
  }
  const parsed = schema.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  throw new MemoryError('invalid_argument', `${tool}: ${describeIssues(parsed.error.issues)}`);
}

export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const quoted = issues.slice(0, issuesQuotedMax).map((i) => `${i.path.length ? i.path.join('.') : '(arguments)'}: ${i.message}`);
  const rest = issues.length - quoted.length;
  return quoted.join('; ') + (rest > 0 ? `; and ${rest} more` : '');
}

/** A result past resultBytesMax is a paging bug: refuse it rather than flood the agent. */
function boundResult<T>(tool: string, result: T): T {
  if (jsonBytes(result) > resultBytesMax) {
    throw new MemoryError('limit_exceeded', `${tool}: result exceeds ${resultBytesMax} bytes`, 'ask for a smaller page');
  }
  return result;
}

export function readTool<I extends z.ZodObject, O extends z.ZodObject>(def: {
  name: string;
  title: string;
  description: string;
  capability?: Capability;
  input: I;
  output: O;
  run(ctx: ToolContext, args: z.infer<I>): Promise<z.infer<O>>;
}): ToolDef {
  // Strict at every level: a misspelt optional argument, or a nested field, is an error naming it, not silently ignored.
  const input = strictArguments(def.input);
  const tool: ToolDef = {
    name: def.name,
    title: def.title,
    description: def.description,
    capability: def.capability ?? 'read',
    input,
    output: def.output,
    annotations: readAnnotations,
    async call(ctx, raw) {
      const args = parseToolInput(def.name, input, raw) as z.infer<I>;
      return boundResult(def.name, await def.run(ctx, args));
    },
  };
  return tool;
}

export function writeTool<A extends z.ZodObject, R extends z.ZodObject>(def: {
  reducer: ReducerDef<z.infer<A>, z.infer<R>>;
  args: A;
  result: R;
  title: string;
  description: string;
  capability?: Capability;
  destructive?: boolean;
  idempotent?: boolean;
}): ToolDef {
  // Strict, as the read tools'.
  const input = strictArguments(def.args.extend({ idempotency_key: idempotencyKey.optional() }));
  const output = def.result.extend({ offset: int() });
  const name = def.reducer.name;
  const tool: ToolDef = {
    name,
    title: def.title,
    description: def.description,
    capability: def.capability ?? 'write',
    input,
    output,
    annotations: {
      readOnlyHint: false,
      destructiveHint: def.destructive ?? false,
      idempotentHint: def.idempotent ?? false,
      openWorldHint: false,
    },
    async call(ctx, raw) {
      const { idempotency_key: key, ...args } = parseToolInput(name, input, raw) as Record<string, unknown>;
      const options = typeof key === 'string' ? { idempotencyKey: scopedIdempotencyKey(name, ctx.caller.subject, key) } : {};
      const done = await ctx.memory.store.call<Record<string, unknown>>(name, args, ctx.caller, options);
      return boundResult(name, { ...done.result, offset: done.offset });
    },
  };
  return tool;
}

/**
 * Keys are scoped per caller and tool (one agent's key can neither replay nor block another's
 * call) and hashed into the engine's key alphabet and length.
 */
export function scopedIdempotencyKey(tool: string, subject: string, key: string): string {
  return 'k:' + createHash('sha256').update(`${tool}\u0000${subject}\u0000${key}`).digest('base64url');
}
