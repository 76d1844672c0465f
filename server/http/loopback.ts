/**
 * Whether a socket address (as node reports it: `remoteAddress`, `address()`) is this machine's
 * loopback: 127.0.0.0/8, ::1, or an IPv4 loopback address mapped into IPv6 (a dual-stack socket).
 */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}
