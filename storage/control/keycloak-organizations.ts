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

/**
 * A count of kc_organizations is reused this long (then followed by what this instance adds): at
 * the bound, every event naming an organization not known would otherwise count up to
 * kcOrganizationsMax rows, and a count kept for a whole projector pass would miss the rows the
 * retention deletes meanwhile (and refuse for good an event there is room for).
 */
export const organizationRowsCountMsMax = 1_000;

export class KnownOrganizations {
  /** The table's rows as last counted, plus what this instance made since. */
  private rows: number | undefined;
  private countedAtMs = 0;

  constructor(
    private readonly control: ControlPlane,
    private readonly organizationsMax: number = kcOrganizationsMax,
  ) {}

  private async rowsNow(): Promise<number> {
    const nowMs = performance.now();
    if (this.rows === undefined || nowMs - this.countedAtMs > organizationRowsCountMsMax) {
      this.rows = await this.control.organizationRows();
      this.countedAtMs = nowMs;
    }
    return this.rows;
  }

  /**
   * Learns the organization `event` names by id and alias. The refusal when it is not known yet
   * and the realm holds organizationsMax rows (the event is then refused whole); a deletion (of a
   * user, of the organization) is never refused, its organization is then not learned. Rows others
   * add (other nodes, the webhook or the projector beside this one) are seen at the next count, at
   * most organizationRowsCountMsMax later: meanwhile they may pass the bound by what they add.
   */
  async learn(event: KeycloakEvent): Promise<MemoryError | undefined> {
    const { id, alias } = event.organization;
    // An empty one names nothing (an empty alias would replace the known one and misroute the organization's id-only events).
    if (!id || !alias) return undefined;
    const known = await this.control.organizationRow(id);
    // A row marked deleted is looked at again: an event newer than its deletion unmarks it (made
    // again). A newer time is kept: a deletion older than it, projected later, does not mark the row.
    if (known?.alias === alias && !known.deleted && known.namedMs !== null && known.namedMs >= event.timeMs) return undefined;
    if (known === undefined) {
      const rows = await this.rowsNow();
      if (rows >= this.organizationsMax) {
        if (userDeletedBy(event) !== null || organizationDeletedBy(event) !== null) return undefined;
        return new MemoryError(
          'limit_exceeded',
          `Keycloak event not applied: kc_organizations holds ${rows} organizations, the most a realm may (kcOrganizationsMax ${this.organizationsMax}); organization ${id} (${alias}) would be one more`,
          'delete organizations no longer needed in Keycloak (a deleted one\'s row goes after IOBOXX_KC_LANDING_RETENTION_DAYS; a shorter retention frees them sooner), then make the change again there (a new event)',
        );
      }
    }
    const made = await this.control.rememberOrganization(id, alias, event.timeMs);
    if (made && this.rows !== undefined) this.rows++;
    return undefined;
  }
}
