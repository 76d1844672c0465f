/**
 * A memory tool: plain data + a function, no MCP imports. The server turns each ToolDef
 * into an MCP tool (input JSON Schema from zod, outputSchema, annotations), so adding a
 * tool here exposes it with no other edit.
 */
import type { z } from 'zod';
import type { Caller } from '../storage/changes.js';
import type { TenantMemory } from './memory.js';

export type Capability = 'read' | 'write' | 'admin' | 'audit';

export interface ToolAnnotations {
  readonly readOnlyHint: boolean;
  readonly destructiveHint: boolean;
  readonly idempotentHint: boolean;
  readonly openWorldHint: false;
}

export interface ToolContext {
  readonly memory: TenantMemory;
  readonly caller: Caller;
}

export interface ToolDef<I extends z.ZodObject = z.ZodObject, O extends z.ZodObject = z.ZodObject> {
  /** domain_verb, snake_case. */
  readonly name: string;
  readonly title: string;
  /** Short and exact: what it does and when to use it. */
  readonly description: string;
  readonly capability: Capability;
  readonly input: I;
  readonly output: O;
  readonly annotations: ToolAnnotations;
  /** Throws MemoryError for operating errors (invalid_argument, not_found, version_conflict, limit_exceeded, forbidden). */
  call(ctx: ToolContext, args: z.infer<I>): Promise<z.infer<O>>;
}

/** Hard bound on one tool result's JSON; past it the tool must page. */
export const resultBytesMax = 256 * 1024;

/**
 * JSON bytes of one call's arguments; larger is limit_exceeded before parsing. One limit for
 * both sides of the boundary: the server checks it as a call comes in (server/mcp/limits.ts
 * re-exports it), each tool again as it parses (define-tool.ts).
 */
export const toolArgumentsBytesMax = 1024 * 1024;
/** Default and maximum page sizes for list-like results. */
export const pageSizeDefault = 50;
export const pageSizeMax = 200;
