/**
 * What every MCP server instance of this process exposes, whatever the transport or era:
 * the tool list, the resource catalog and the observation hooks. Built once at start.
 */
import type { ResourceCatalog } from '../../resources/catalog.js';
import type { MemoryErrorCode } from '../../storage/errors.js';
import type { ToolDef } from '../../tools/tool.js';
import type { Principal } from '../auth/principal.js';
import type { Logger } from '../log.js';
import type { OpenProgress } from '../tenants/open-progress.js';

export type CallOutcome = 'ok' | MemoryErrorCode;

/** One tools/call as the access log and audit see it (allowed or refused). */
export interface ToolCallEvent {
  readonly principal: Principal;
  readonly tool: string;
  readonly args: unknown;
  readonly outcome: CallOutcome;
  /** Commit offset, when the result carries one (every write does). */
  readonly offset?: number;
  readonly durationMs: number;
}

/** One resource request that reaches data (allowed or refused): a read, a list page, a (un)subscribe. */
export interface ResourceRequestEvent {
  readonly principal: Principal;
  readonly method: 'resources/read' | 'resources/list' | 'resources/subscribe' | 'resources/unsubscribe';
  /** The URI; for a list, the page's cursor or '-' for the first page. */
  readonly target: string;
  readonly outcome: CallOutcome;
  readonly durationMs: number;
}

/**
 * Any other MCP request, as its connection's transport saw it (server/mcp/request-audit.ts):
 * initialize, ping, tools/list, a method nobody serves, a call the SDK refused before our handler.
 */
export interface McpRequestEvent {
  readonly principal: Principal;
  readonly method: string;
  /** What the request names, when the audit should say (a listen's resource URIs). */
  readonly target?: string;
  /** `ok`, our error code when the answer carries one, the JSON-RPC error's name, or `no_answer` (the connection closed first). */
  readonly outcome: string;
  readonly durationMs: number;
}

export interface McpSurface {
  readonly tools: readonly ToolDef[];
  readonly catalog: ResourceCatalog;
  readonly log: Logger;
  /** Called after every tools/call answer is decided. Must not throw (a throw is logged and ignored). */
  readonly onToolCall?: (event: ToolCallEvent) => void;
  /** Called after every resource request that reaches data is answered. Must not throw (logged and ignored). */
  readonly onResourceRequest?: (event: ResourceRequestEvent) => void;
  /** Called once every other request is answered (or its connection closed first). Must not throw (logged and ignored). */
  readonly onRequest?: (event: McpRequestEvent) => void;
  /**
   * A write tool (not readOnlyHint) has passed every check and is about to commit: work queued
   * for the caller's tenant store may be submitted now to share the call's commit batch. Must
   * be quick and not throw (a throw is logged and ignored).
   */
  readonly beforeWriteCall?: (principal: Principal) => void;
  /** Opens of tenant stores in progress: a tools/call, resources/read or resources/list with a progressToken hears its tenant's (progress-notifications.ts). */
  readonly openProgress?: OpenProgress;
}
