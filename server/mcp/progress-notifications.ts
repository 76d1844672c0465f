/**
 * MCP progress for a request that waits on its tenant's store being opened (a big tenant's first
 * request replays its log: seconds). The client asked for it with a progressToken; each report
 * of the open becomes a `notifications/progress` under that token. Spec rules kept: `progress`
 * grows with every notification (a count of reports: the open's phases each count from zero),
 * and none is sent after the request is answered (the caller stops listening first).
 */
import type { Notification, ProgressToken } from '@modelcontextprotocol/server';
import type { OpenProgress, OpenProgressListener } from '../tenants/open-progress.js';

/** At most one notification per this many ms, except a phase's last report (a replay's every 10,000 frames would flood a slow client). */
export const progressNotifyMsMin = 100;

/** What the open's phases are called in the message. */
const phaseWords: Readonly<Record<string, string>> = {
  scan: 'checking the log segments',
  snapshot: 'loading the snapshot',
  replay: 'replaying the log',
};

/** A listener that passes an open's reports on as progress notifications of the request with `token`. */
export function progressNotifier(token: ProgressToken, notify: (notification: Notification) => Promise<void>, nowMs: () => number = () => performance.now()): OpenProgressListener {
  let sent = 0;
  let lastSentMs = Number.NEGATIVE_INFINITY;
  return (phase, done, total) => {
    const now = nowMs();
    const phaseEnd = done >= total;
    if (!phaseEnd && now - lastSentMs < progressNotifyMsMin) return;
    lastSentMs = now;
    sent += 1;
    const message = `opening the tenant's store: ${phaseWords[phase] ?? phase}, ${done} of ${total}`;
    // A client gone meanwhile: its answer will not be read either; nothing to do.
    notify({ method: 'notifications/progress', params: { progressToken: token, progress: sent, message } }).catch(() => undefined);
  };
}

/** What a request handler knows of its request, for its progress. */
export interface ProgressRequest {
  readonly token: ProgressToken | undefined;
  readonly notify: (notification: Notification) => Promise<void>;
  /** Aborted when the client cancels the request: it hears nothing more. */
  readonly signal?: AbortSignal;
}

/**
 * Runs a request's `work`, which may wait on `tenant`'s store being opened: when the request
 * asked for progress (a token), it hears that open meanwhile, and nothing once it is answered or
 * cancelled.
 */
export async function withOpenProgress<R>(openProgress: OpenProgress | undefined, tenant: string, request: ProgressRequest, work: () => Promise<R>): Promise<R> {
  const { token, notify, signal } = request;
  const stopListening = token === undefined || signal?.aborted === true ? undefined : openProgress?.listen(tenant, progressNotifier(token, notify));
  if (stopListening !== undefined) signal?.addEventListener('abort', stopListening, { once: true });
  try {
    return await work();
  } finally {
    stopListening?.();
  }
}

/** The progress side of an SDK request handler's request and context. */
export function progressRequestOf(params: { _meta?: { progressToken?: ProgressToken } } | undefined, ctx: { mcpReq: { notify: ProgressRequest['notify']; signal: AbortSignal } }): ProgressRequest {
  return { token: params?._meta?.progressToken, notify: ctx.mcpReq.notify, signal: ctx.mcpReq.signal };
}
