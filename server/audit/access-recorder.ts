/**
 * Every MCP request produces an audit event (DESIGN invariant 7): tool calls and resource
 * reads — allowed or refused — become rows of the tenant's `access_log` (a system reducer,
 * so they are durable in the tenant's own commitlog), which the control runtime stages into
 * Postgres and ships to S3. Refusals before a tenant is known (bad tokens) go straight to
 * Postgres staging as server events.
 *
 * The append is not on the response path: the call's own effect is already durable (its
 * invocation, with caller and arguments, is in the commitlog frame); the access row follows
 * in the next group commit.
 */
import { systemCaller } from '../../storage/control/run-outbox.js';
import type { Principal } from '../auth/principal.js';
import type { ControlRuntime, WithTenant } from '../control/control-runtime.js';
import type { Logger } from '../log.js';
import type { ResourceReadEvent, ToolCallEvent } from '../mcp/surface.js';

/** Object ids taken from a call's arguments into its access row (bounded like the column). */
export const accessObjectIdsMax = 20;
const idArgumentNames = ['id', 'object_id', 'src', 'dst', 'thread_id', 'instance_id', 'session_id', 'surface_id'];
const fieldCharsMax = 1024;

export interface AccessRecorder {
  onToolCall(event: ToolCallEvent): void;
  onResourceRead(event: ResourceReadEvent): void;
  /** An HTTP request refused before any tenant store was involved. */
  onRefusal(refusal: { path: string; status: number; reason: string; tenant?: string }): void;
}

export function createAccessRecorder(input: {
  readonly withTenant: WithTenant;
  readonly control: () => ControlRuntime | undefined;
  readonly log: Logger;
}): AccessRecorder {
  const append = (principal: Principal, row: { action: string; target: string; object_ids: string[]; offset: number | null; outcome: string }) => {
    const tenant = principal.caller.tenant;
    input.withTenant(tenant, (memory) => memory.store.call('access_log_append', {
      subject: clip(principal.caller.subject) || 'unknown', action: row.action, target: clip(row.target) || '-',
      object_ids: row.object_ids, offset: row.offset, outcome: clip(row.outcome) || 'unknown',
    }, systemCaller(tenant, 'access-log')))
      .then(() => input.control()?.tenantChanged(tenant))
      .catch((error: unknown) => input.log.error({ tenant, err: (error as Error).message, action: row.action, target: row.target }, 'access log append failed'));
  };
  return {
    onToolCall(e) {
      append(e.principal, { action: 'tools/call', target: e.tool, object_ids: objectIdsOf(e.args), offset: e.offset ?? null, outcome: e.outcome });
    },
    onResourceRead(e) {
      append(e.principal, { action: 'resources/read', target: e.uri, object_ids: [], offset: null, outcome: e.outcome });
    },
    onRefusal(r) {
      input.control()?.auditDenial({
        tenant: r.tenant ?? null, atMs: Date.now(), subject: null, action: 'http', target: clip(r.path), outcome: String(r.status), reason: clip(r.reason),
      });
    },
  };
}

function objectIdsOf(args: unknown): string[] {
  if (!args || typeof args !== 'object') return [];
  const ids: string[] = [];
  for (const name of idArgumentNames) {
    const v = (args as Record<string, unknown>)[name];
    if (typeof v === 'string' && ids.length < accessObjectIdsMax) ids.push(clip(v));
  }
  return ids;
}

function clip(text: string): string {
  return text.length > fieldCharsMax ? text.slice(0, fieldCharsMax) : text;
}
