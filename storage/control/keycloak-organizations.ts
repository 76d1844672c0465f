/**
 * What is learned of kc_organizations (organization id -> alias, so an event naming an
 * organization only by id reaches the tenant named by its alias), bounded over the realm by
 * kcOrganizationsMax. Learned as events naming both land (the webhook: an id-only event landed
 * before routes right however far behind the projector is) and again as they are projected,
 * where one past the bound refuses its event; the projector learns a batch's organizations
 * before applying any of its events.
 */
import { MemoryError } from '../errors.js';
import { kcOrganizationsMax, type ControlPlane } from './control-plane.js';
import { organizationDeletedBy, userDeletedBy, type KeycloakEvent } from './keycloak-event.js';

export class KnownOrganizations {
  /** The table's rows: counted at the first organization new to it in a pass, then followed by what this pass adds. */
  private rows: number | undefined;

  constructor(
    private readonly control: ControlPlane,
    private readonly organizationsMax: number = kcOrganizationsMax,
  ) {}

  /**
   * Learns the organization `event` names by id and alias. The refusal when it is not known yet
   * and the realm holds organizationsMax rows (the event is then refused whole); a deletion (of a
   * user, of the organization) is never refused, its organization is then not learned. Other
   * nodes' passes adding rows meanwhile are not seen: they may pass the bound by what they add in one pass.
   */
  async learn(event: KeycloakEvent): Promise<MemoryError | undefined> {
    const { id, alias } = event.organization;
    if (id === null || alias === null) return undefined;
    const known = await this.control.organizationAlias(id);
    if (known === alias) return undefined;
    if (known === undefined) {
      this.rows ??= await this.control.organizationRows();
      if (this.rows >= this.organizationsMax) {
        if (userDeletedBy(event) !== null || organizationDeletedBy(event) !== null) return undefined;
        return new MemoryError(
          'limit_exceeded',
          `Keycloak event not applied: kc_organizations holds ${this.rows} organizations, the most a realm may (kcOrganizationsMax ${this.organizationsMax}); organization ${id} (${alias}) would be one more`,
          'delete organizations no longer needed in Keycloak (a deleted one\'s row goes after IOBOXX_KC_LANDING_RETENTION_DAYS; a shorter retention frees them sooner), then make the change again there (a new event)',
        );
      }
    }
    const made = await this.control.rememberOrganization(id, alias, event.timeMs);
    if (made && this.rows !== undefined) this.rows++;
    return undefined;
  }
}
