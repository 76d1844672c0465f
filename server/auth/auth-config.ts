/**
 * Identity configuration from the environment. No IOBOXX_OIDC_ISSUER means local mode (one
 * local tenant, no tokens): `authConfigFromEnv` returns undefined.
 *
 *   IOBOXX_OIDC_ISSUER              issuer URL exactly as in the tokens' `iss`
 *                                   (Keycloak: https://HOST/realms/REALM)
 *   IOBOXX_OIDC_AUDIENCE            expected `aud` (comma-separated for several; required with an issuer;
 *                                   Keycloak sets `aud` only through an Audience mapper)
 *   IOBOXX_OIDC_CLIENT_ID           client whose roles count (`resource_access.<id>.roles`;
 *                                   default: the first audience)
 *   IOBOXX_OIDC_ALGORITHMS          accepted signing algorithms, comma-separated (default RS256;
 *                                   RS256, ES256, PS256)
 *   IOBOXX_OIDC_CLOCK_TOLERANCE_S   clock skew allowed on exp/nbf (default 5, at most 300)
 *   IOBOXX_OIDC_JWKS_COOLDOWN_MS    least time between two key refetches for unknown kids (default 10000)
 *   IOBOXX_OIDC_JWKS_MAX_AGE_MS     keys are refetched when older than this (default 600000)
 *   IOBOXX_OIDC_ALLOW_HTTP          "true" accepts http issuer URLs on non-loopback hosts
 *   IOBOXX_TENANT_CLAIM             claim naming the organizations (default organization)
 *   IOBOXX_ROLE_MAP                 JSON role -> capabilities, replaces the defaults (capabilities.ts)
 *   IOBOXX_PUBLIC_URL               this server's public base URL (Protected Resource Metadata)
 *   IOBOXX_TOKEN, IOBOXX_TENANT     stdio: the access token, and the tenant when it names several
 */
import { MemoryError } from '../../storage/errors.js';
import { parseRoleMap, roleMapDefault, roleMapFrom, type RoleMap } from './capabilities.js';
import { publicOrigin } from './protected-resource-metadata.js';
import { jwksStaleMaxAgeMsDefault } from './stale-key-fallback.js';
import { tenantClaimDefault } from './tenant-claims.js';
import {
  assertIssuerUrl,
  clockToleranceSDefault,
  clockToleranceSMax,
  jwksCacheMaxAgeMsDefault,
  jwksCooldownMsDefault,
  signingAlgorithms,
  type SigningAlgorithm,
  type TokenVerifierOptions,
} from './token-verifier.js';

export interface AuthConfig {
  readonly oidc: TokenVerifierOptions;
  /** Whose client roles count: `resource_access.<clientId>.roles`. */
  readonly clientId: string;
  readonly tenantClaim: string;
  readonly roleMap: RoleMap;
  /** IOBOXX_PUBLIC_URL as an origin; undefined when unset (then each request's own origin, its Host). */
  readonly publicBaseUrl?: string;
}

export const claimNameCharsMax = 128;

/** The settings read here and nowhere else (a configuration file may name them). */
export const authSettingNames = [
  'IOBOXX_OIDC_AUDIENCE', 'IOBOXX_OIDC_CLIENT_ID', 'IOBOXX_OIDC_ALGORITHMS', 'IOBOXX_OIDC_CLOCK_TOLERANCE_S',
  'IOBOXX_OIDC_JWKS_COOLDOWN_MS', 'IOBOXX_OIDC_JWKS_MAX_AGE_MS', 'IOBOXX_OIDC_JWKS_STALE_MAX_AGE_MS',
  'IOBOXX_OIDC_ALLOW_HTTP', 'IOBOXX_TENANT_CLAIM', 'IOBOXX_ROLE_MAP',
] as const;

type Env = Readonly<Record<string, string | undefined>>;

/** Every problem of the identity settings, so that loadConfig reports them with the others at once. */
export class AuthConfigError extends MemoryError {
  constructor(readonly problems: readonly string[]) {
    super('invalid_argument', problems.join('; '));
    this.name = 'AuthConfigError';
  }
}

export function authConfigFromEnv(env: Env = process.env): AuthConfig | undefined {
  const issuer = nonEmpty(env.IOBOXX_OIDC_ISSUER);
  if (issuer === undefined) return undefined;
  // Each bad setting is collected, not thrown at once: the operator fixes them all in one go.
  const problems: string[] = [];
  const audience = list(env.IOBOXX_OIDC_AUDIENCE);
  if (audience.length === 0) {
    problems.push('IOBOXX_OIDC_AUDIENCE is required with IOBOXX_OIDC_ISSUER (the aud your Audience mapper sets)');
  }
  const algorithms = list(env.IOBOXX_OIDC_ALGORITHMS);
  for (const alg of algorithms) {
    if (!(signingAlgorithms as readonly string[]).includes(alg)) {
      problems.push(`IOBOXX_OIDC_ALGORITHMS: ${alg} is not one of ${signingAlgorithms.join(', ')}`);
    }
  }
  const tenantClaim = nonEmpty(env.IOBOXX_TENANT_CLAIM) ?? tenantClaimDefault;
  if (tenantClaim.length > claimNameCharsMax) problems.push(`IOBOXX_TENANT_CLAIM is longer than ${claimNameCharsMax}`);
  const roleMapJson = nonEmpty(env.IOBOXX_ROLE_MAP);
  let roleMap = roleMapFrom(roleMapDefault);
  try {
    if (roleMapJson !== undefined) roleMap = parseRoleMap(roleMapJson);
  } catch (error) {
    problems.push((error as Error).message);
  }
  const publicUrl = nonEmpty(env.IOBOXX_PUBLIC_URL);
  let publicBaseUrl: string | undefined;
  try {
    publicBaseUrl = publicUrl === undefined ? undefined : publicOrigin(publicUrl);
  } catch {
    problems.push('IOBOXX_PUBLIC_URL must be an http(s) origin such as https://memory.example.com (no path)');
  }
  const allowHttp = boolean(env, 'IOBOXX_OIDC_ALLOW_HTTP', false, problems);
  // What the token verifier asserts when it is made (token-verifier.ts assertVerifierOptions), checked
  // here too: there it is a stack trace after the start has begun, here one line with the others.
  problems.push(...issuerProblems(issuer, allowHttp));
  const clockToleranceS = number(env, 'IOBOXX_OIDC_CLOCK_TOLERANCE_S', clockToleranceSDefault, problems);
  if (clockToleranceS > clockToleranceSMax) problems.push(`IOBOXX_OIDC_CLOCK_TOLERANCE_S must be at most ${clockToleranceSMax} seconds`);
  const config: AuthConfig = {
    oidc: {
      issuer,
      audience,
      algorithms: algorithms.length > 0 ? (algorithms as SigningAlgorithm[]) : ['RS256'],
      clockToleranceS,
      jwksCooldownMs: number(env, 'IOBOXX_OIDC_JWKS_COOLDOWN_MS', jwksCooldownMsDefault, problems),
      jwksCacheMaxAgeMs: number(env, 'IOBOXX_OIDC_JWKS_MAX_AGE_MS', jwksCacheMaxAgeMsDefault, problems),
      jwksStaleMaxAgeMs: number(env, 'IOBOXX_OIDC_JWKS_STALE_MAX_AGE_MS', jwksStaleMaxAgeMsDefault, problems),
      allowHttp,
    },
    clientId: nonEmpty(env.IOBOXX_OIDC_CLIENT_ID) ?? audience[0] ?? '',
    tenantClaim,
    roleMap,
    ...(publicBaseUrl === undefined ? {} : { publicBaseUrl }),
  };
  if (problems.length > 0) throw new AuthConfigError(problems);
  return config;
}

/** The issuer URL as the verifier will fetch it (assertIssuerUrl); one that is no URL at all config.ts reports. */
function issuerProblems(issuer: string, allowHttp: boolean): string[] {
  if (!URL.canParse(issuer)) return [];
  try {
    assertIssuerUrl(issuer, allowHttp, 'IOBOXX_OIDC_ISSUER');
    return [];
  } catch (error) {
    return [(error as Error).message];
  }
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** A problem goes to `problems` (the fallback stands in), so that every bad setting is reported at once. */
function number(env: Env, name: string, fallback: number, problems: string[]): number {
  const raw = nonEmpty(env[name]);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (Number.isFinite(value) && value >= 0) return value;
  problems.push(`${name} must be a non-negative number`);
  return fallback;
}

/** true/false (1/0 too); anything else is refused rather than read as false. */
function boolean(env: Env, name: string, fallback: boolean, problems: string[]): boolean {
  const raw = nonEmpty(env[name])?.toLowerCase();
  if (raw === undefined) return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  problems.push(`${name} must be true or false`);
  return fallback;
}
