/**
 * What every MCP server instance of this process exposes, whatever the transport or era:
 * the tool list, the resource catalog and the observation hooks. Built once at start.
 */
import type { ResourceCatalog } from '../../resources/catalog.js';
import type { MemoryErrorCode } from '../../storage/errors.js';
import type { ToolDef } from '../../tools/tool.js';
import type { Principal } from '../auth/principal.js';
import type { Logger } from '../log.js';

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

/** One resources/read (allowed or refused). */
export interface ResourceReadEvent {
  readonly principal: Principal;
  readonly uri: string;
  readonly outcome: CallOutcome;
  readonly durationMs: number;
}

export interface McpSurface {
  readonly tools: readonly ToolDef[];
  readonly catalog: ResourceCatalog;
  readonly log: Logger;
  /** Called after every tools/call answer is decided. Must not throw (a throw is logged and ignored). */
  readonly onToolCall?: (event: ToolCallEvent) => void;
  readonly onResourceRead?: (event: ResourceReadEvent) => void;
  /**
   * A write tool (not readOnlyHint) has passed every check and is about to commit: work queued
   * for the caller's tenant store may be submitted now to share the call's commit batch. Must
   * be quick and not throw (a throw is logged and ignored).
   */
  readonly beforeWriteCall?: (principal: Principal) => void;
}
