/**
 * tools/list and tools/call for one principal. Tools the principal may not use are not
 * listed, and calling one is refused as forbidden (not "unknown": the caller may hold a
 * stale list). Arguments are bounded before they are parsed; results are checked against
 * the tool's own output schema and bounded before they leave.
 */
import type { CallToolResult, Server, Tool } from '@modelcontextprotocol/server';
import { resultBytesMax, type ToolDef } from '../../tools/tool.js';
import type { WithMemory } from './memory-source.js';
import type { Principal } from '../auth/principal.js';
import { errorBodyOf, protocolErrorOf, toolErrorResult, type ErrorBody } from './error-mapping.js';
import { refuseCursorOfSinglePageList } from './single-page-list.js';
import { argumentsShapeProblem } from './arguments-shape.js';
import { toolArgumentsBytesMax } from './limits.js';
import { afterAnswer } from './after-answer.js';
import { progressRequestOf, withOpenProgress } from './progress-notifications.js';
import { reportedByHandler } from './request-audit.js';
import type { CallOutcome, McpSurface, ToolCallEvent } from './surface.js';
import { toolEntryOf } from './tool-schema.js';

const toolIndexes = new WeakMap<readonly ToolDef[], ReadonlyMap<string, ToolDef>>();

function toolIndexOf(tools: readonly ToolDef[]): ReadonlyMap<string, ToolDef> {
  let index = toolIndexes.get(tools);
  if (index === undefined) {
    index = new Map(tools.map((def) => [def.name, def]));
    if (index.size !== tools.length) throw new Error('two tools share a name');
    toolIndexes.set(tools, index);
  }
  return index;
}

export function allowedTools(tools: readonly ToolDef[], principal: Principal): Tool[] {
  return tools.filter((def) => principal.capabilities.has(def.capability)).map(toolEntryOf);
}

/**
 * Success: the structured result, mirrored as JSON text for clients that read only content.
 * Keys in the order the SDK's result schema writes them (content first), so an answer served
 * without that schema (a transport's direct path) is the same bytes.
 */
export function toolSuccessResult(structured: Record<string, unknown>, json: string): CallToolResult {
  return { content: [{ type: 'text', text: json }], structuredContent: structured };
}

interface Answer {
  readonly result: CallToolResult;
  readonly outcome: CallOutcome;
  readonly offset?: number;
}

function refusal(body: ErrorBody): Answer {
  return { result: toolErrorResult(body), outcome: body.code };
}

/** The decision for one call: pure except for the tool's own work. */
async function answerCall(
  surface: McpSurface,
  principal: Principal,
  withMemory: WithMemory,
  name: string,
  args: unknown,
): Promise<Answer> {
  const def = toolIndexOf(surface.tools).get(name);
  if (def === undefined) {
    return refusal({ code: 'not_found', message: `unknown tool "${name}"`, hint: 'call tools/list for the tools you may use' });
  }
  if (!principal.capabilities.has(def.capability)) {
    return refusal({ code: 'forbidden', message: `tool "${name}" needs the ${def.capability} capability, which this caller does not have` });
  }
  const shape = argumentsShapeProblem(args);
  if (shape !== undefined) return refusal(shape);
  const argsBytes = Buffer.byteLength(JSON.stringify(args ?? {}), 'utf8');
  if (argsBytes > toolArgumentsBytesMax) {
    return refusal({
      code: 'limit_exceeded',
      message: `arguments are ${argsBytes} bytes of JSON; the limit (toolArgumentsBytesMax) is ${toolArgumentsBytesMax}`,
      hint: 'send less per call: split the work into several calls',
    });
  }
  const parsed = def.input.safeParse(args ?? {});
  if (!parsed.success) return refusal(errorBodyOf(parsed.error).body);

  let output: unknown;
  try {
    output = await withMemory((memory) => {
      if (!def.annotations.readOnlyHint) beforeWrite(surface, principal);
      return def.call({ memory, caller: principal.caller }, parsed.data);
    });
  } catch (error) {
    const { body, isInternal } = errorBodyOf(error);
    if (isInternal) surface.log.error({ err: error, tool: name, tenant: principal.caller.tenant }, 'tool failed');
    return refusal(body);
  }
  // The other side of the boundary: a tool that breaks its own output schema is a bug.
  const checked = def.output.safeParse(output);
  if (!checked.success) {
    surface.log.error({ tool: name, issues: checked.error.issues }, 'tool result does not match its output schema');
    return refusal(errorBodyOf(new Error('output schema mismatch')).body);
  }
  const structured = checked.data as Record<string, unknown>;
  const offset = typeof structured['offset'] === 'number' ? structured['offset'] : undefined;
  const json = JSON.stringify(structured);
  const resultBytes = Buffer.byteLength(json, 'utf8');
  if (resultBytes > resultBytesMax) {
    // A write is already durable at this point: say so, so the caller does not retry it blindly.
    const written = offset !== undefined ? ` The call itself succeeded at offset ${offset}.` : '';
    return {
      ...refusal({
        code: 'limit_exceeded',
        message: `result is ${resultBytes} bytes of JSON; the limit (resultBytesMax) is ${resultBytesMax}.${written}`,
        hint: 'ask for a smaller page (limit) or fewer fields',
      }),
      ...(offset !== undefined && { offset }),
    };
  }
  return { result: toolSuccessResult(structured, json), outcome: 'ok', ...(offset !== undefined && { offset }) };
}

function beforeWrite(surface: McpSurface, principal: Principal): void {
  try {
    surface.beforeWriteCall?.(principal);
  } catch (error) {
    surface.log.error({ err: error }, 'beforeWriteCall hook threw');
  }
}

function reportCall(surface: McpSurface, principal: Principal, tool: string, args: unknown, answer: Answer, startedMs: number): void {
  const onToolCall = surface.onToolCall;
  if (onToolCall === undefined) return;
  const event: ToolCallEvent = {
    principal,
    tool,
    args,
    outcome: answer.outcome,
    ...(answer.offset !== undefined && { offset: answer.offset }),
    durationMs: performance.now() - startedMs,
  };
  afterAnswer(surface.log, 'onToolCall', () => onToolCall(event));
}

/**
 * One tools/call of one principal, start to answer: revalidate, decide, report. Never throws:
 * every failure is an isError result. Both the SDK's request handler and a transport's direct
 * path (server/mcp/stdio-transport.ts) serve calls through this one function.
 */
export type ToolCaller = (name: string, args: Record<string, unknown> | undefined) => Promise<CallToolResult>;

const toolCallers = new WeakMap<Server, ToolCaller>();

/** The tool caller registered on `server` (by registerToolHandlers), for a transport's direct path. */
export function toolCallerOf(server: Server): ToolCaller | undefined {
  return toolCallers.get(server);
}

export function registerToolHandlers(
  server: Server,
  surface: McpSurface,
  principal: Principal,
  withMemory: WithMemory,
  revalidate?: () => Promise<void>,
): void {
  const callTool: ToolCaller = async (name, args) => {
    const startedMs = performance.now();
    let answer: Answer;
    try {
      await revalidate?.();
      answer = await answerCall(surface, principal, withMemory, name, args);
    } catch (error) {
      // A refused revalidation (MemoryError), or a bug in our own code (the tool's throws are handled inside).
      const { body, isInternal } = errorBodyOf(error);
      if (isInternal) surface.log.error({ err: error, tool: name }, 'tools/call failed');
      answer = refusal(body);
    }
    reportCall(surface, principal, name, args, answer, startedMs);
    return answer.result;
  };
  toolCallers.set(server, callTool);
  server.setRequestHandler('tools/list', async (request) => {
    try {
      await revalidate?.();
      refuseCursorOfSinglePageList('tools/list', request.params?.cursor);
    } catch (error) {
      // A JSON-RPC error carrying {error}, as resources/* answer theirs (a MemoryError thrown here was -32603).
      throw protocolErrorOf(errorBodyOf(error).body);
    }
    return { tools: allowedTools(surface.tools, principal) };
  });
  server.setRequestHandler('tools/call', (request, ctx) => {
    reportedByHandler(server, ctx.mcpReq.id); // callTool reports it, with its object ids and offset
    return withOpenProgress(surface.openProgress, principal.caller.tenant, progressRequestOf(request.params, ctx), () =>
      callTool(request.params.name, request.params.arguments));
  });
}
