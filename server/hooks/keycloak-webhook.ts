/**
 * POST /hooks/keycloak: Keycloak user and admin events (stock JSON or the webhook-extension
 * form), checked against `X-Keycloak-Signature` (hex HMAC-SHA256 of the raw body with the
 * configured secret) before anything is parsed, then landed raw and idempotently. The
 * organization an event names by id and alias is learned as it lands (bounded:
 * keycloak-organizations.ts), so an event naming it only by id, landed earlier but projected
 * later, reaches the tenant of its alias however far behind the projector is. The projector
 * applies landed events to tenants (learning again, and refusing an event past the bound);
 * `onLanded` nudges it.
 *
 * An event is held to the shape a tool call's arguments are (arguments-shape.ts: nesting at
 * most toolArgumentsDepthMax, well-formed Unicode, no "__proto__" key): the projector hands it
 * to its tenant's store as an argument, and a deeper one would overflow the stack there.
 */
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { MemoryError } from '../../storage/errors.js';
import type { ControlPlane } from '../../storage/control/control-plane.js';
import { isDatabaseError } from '../../storage/control/database-error.js';
import { KnownOrganizations } from '../../storage/control/keycloak-organizations.js';
import { argumentsShapeProblem } from '../mcp/arguments-shape.js';
import {
  keycloakEventBytesMax,
  keycloakSignatureHeader,
  landedSubjectUser,
  parseKeycloakEvent,
  verifyKeycloakSignature,
} from '../../storage/control/keycloak-event.js';

export const keycloakWebhookPath = '/hooks/keycloak';

export interface KeycloakWebhookOptions {
  readonly control: ControlPlane;
  readonly secret: string;
  readonly onLanded?: (landingId: number) => void;
  /** A refused request, with the status it was answered (the server records it in its audit). */
  readonly onRejected?: (reason: string, status: number) => void;
  /** Landing failed for a reason other than the database (answered 500): log it. */
  readonly onFailed?: (error: unknown) => void;
  /** Organizations (kc_organizations rows) the realm may hold; default kcOrganizationsMax (tests use fewer, as the projector's). */
  readonly organizationsMax?: number;
}

export function keycloakWebhookRouter(options: KeycloakWebhookOptions): Router {
  if (!options.secret) throw new MemoryError('invalid_argument', 'the Keycloak webhook needs IOBOXX_KC_WEBHOOK_SECRET');
  const router = Router();
  const organizations = new KnownOrganizations(options.control, options.organizationsMax);
  router.post(
    keycloakWebhookPath,
    express.raw({ type: () => true, limit: keycloakEventBytesMax }),
    async (req: Request, res: Response) => {
      const body: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      if (!verifyKeycloakSignature(body, req.header(keycloakSignatureHeader), options.secret)) {
        options.onRejected?.('bad signature', 401);
        res.status(401).json({ error: 'unauthenticated', message: 'missing or wrong X-Keycloak-Signature' });
        return;
      }
      let event;
      try {
        event = parseKeycloakEvent(body);
        const shape = argumentsShapeProblem(event.raw);
        if (shape) throw new MemoryError(shape.code, `Keycloak event: ${shape.message}`, shape.hint);
      } catch (error) {
        const refusal = error instanceof MemoryError ? error : new MemoryError('invalid_argument', 'invalid Keycloak event');
        options.onRejected?.(refusal.message, 400);
        res.status(400).json({ error: refusal.code, message: refusal.message, ...(refusal.hint !== undefined && { hint: refusal.hint }) });
        return;
      }
      try {
        const landed = await options.control.landKeycloakEvent({
          dedupKey: event.dedupKey,
          tenant: event.tenant,
          kind: event.kind,
          eventType: event.type,
          eventTimeMs: event.timeMs,
          raw: event.raw,
          subjectUser: landedSubjectUser(event),
        });
        // Past the bound it is not learned: the projector refuses the event at its turn, naming the bound.
        await organizations.learn(event);
        if (!landed.duplicate) options.onLanded?.(landed.landingId);
        res.status(202).json(landed);
      } catch (error) {
        if (isDatabaseError(error)) {
          // Keycloak's sender retries on a 5xx: the event is landed when Postgres is back.
          res.status(503).json({ error: 'unavailable', message: 'control plane unavailable; retry' });
          return;
        }
        options.onFailed?.(error);
        res.status(500).json({ error: 'internal', message: 'the event could not be landed; the server log says why' });
      }
    },
  );
  // The body parser's refusals are answered here, in the hook's own terms and limit (the MCP
  // server's handler would answer them as JSON-RPC, naming the MCP body limit).
  router.use(keycloakWebhookPath, (error: unknown, _req: Request, res: Response, next: NextFunction) => {
    const refusal = error as { type?: unknown; status?: unknown; message?: unknown } | null;
    if (refusal?.type === 'entity.too.large') {
      options.onRejected?.('body too large', 413);
      res.status(413).json({
        error: 'limit_exceeded',
        message: `Keycloak event larger than ${keycloakEventBytesMax} bytes (keycloakEventBytesMax)`,
        hint: 'Keycloak events are small; check what the sender posts here',
      });
      return;
    }
    if (typeof refusal?.status === 'number' && refusal.status >= 400 && refusal.status < 500 && !res.headersSent) {
      options.onRejected?.(String(refusal.message), refusal.status);
      res.status(refusal.status).json({ error: 'invalid_argument', message: `Keycloak event refused: ${String(refusal.message)}` });
      return;
    }
    next(error);
  });
  return router;
}
