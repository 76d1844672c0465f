/** Lands a Keycloak event as the webhook would (parsed the same way), without an HTTP server. */
import type { ControlPlane } from '../../storage/control/control-plane.js';
import { keycloakEventFromJson, landedSubjectUser } from '../../storage/control/keycloak-event.js';

export async function landKeycloakJson(control: ControlPlane, json: object): Promise<number> {
  const event = keycloakEventFromJson(json, `sha256:test-${JSON.stringify(json)}`);
  const landed = await control.landKeycloakEvent({
    dedupKey: event.dedupKey, tenant: event.tenant, kind: event.kind, eventType: event.type, eventTimeMs: event.timeMs, raw: event.raw,
    subjectUser: landedSubjectUser(event),
  });
  return landed.landingId;
}
