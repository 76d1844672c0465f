import type { IncomingHttpHeaders } from 'node:http';

/**
 * Whether a socket address (as node reports it: `remoteAddress`, `address()`) is this machine's
 * loopback: 127.0.0.0/8, ::1, or an IPv4 loopback address mapped into IPv6 (a dual-stack socket).
 */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

/** Headers a reverse proxy adds to the requests it forwards (RFC 7239, the de facto X- ones, RFC 9110 Via). */
const proxyHeaders = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-real-ip', 'via'] as const;

/**
 * The proxy header a request carries, if any. A proxy on this machine connects over loopback
 * too, on behalf of callers who may be anywhere: a loopback request that says it was forwarded
 * is no local caller's.
 */
export function forwardedBy(headers: IncomingHttpHeaders): string | undefined {
  return proxyHeaders.find((name) => headers[name] !== undefined);
}
