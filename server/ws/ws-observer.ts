/**
 * What the operator sees of /ws connections: a consumer cut off for reading too slowly counts in
 * `ioboxx_subscription_drops_total{reason="slow_consumer"}` and is logged with its tenant and
 * reason. The client may never read the close frame (it sits behind the data it left unread),
 * so this is the one place the cut-off shows.
 */
import type { Logger } from '../log.js';
import type { OpsMetrics } from '../ops/metrics.js';
import type { WsEvent } from './attach-websocket.js';
import { wsClose } from './close-codes.js';

export function observeWebSocket(metrics: Pick<OpsMetrics, 'subscriptionDrop'>, log: Logger): (event: WsEvent) => void {
  return (event) => {
    if (event.kind !== 'close' || event.code !== wsClose.slowConsumer) return;
    metrics.subscriptionDrop('slow_consumer');
    log.warn({ tenant: event.tenant, code: event.code, reason: event.reason }, 'websocket consumer cut off');
  };
}
