/**
 * Who is calling, as established by authentication (a verified token, or local mode).
 * The tenant comes only from here: never from arguments, URIs or unverified headers.
 */
import type { Caller } from '../../storage/changes.js';
import type { Capability } from '../../tools/tool.js';

export interface Principal {
  readonly caller: Caller; // caller.tenant is the tenant whose store serves this request
  readonly capabilities: ReadonlySet<Capability>;
  /** 'local' for the embedded local mode, 'token' for a verified access token. */
  readonly via: 'local' | 'token';
}
