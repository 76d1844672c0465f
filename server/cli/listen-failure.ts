/**
 * `serve --http` that cannot open its listener (the port taken, say by a server already
 * running; a host that does not resolve or is not this machine's) says what to change, naming
 * the setting, instead of ending on Node's stack trace of `listen EADDRINUSE`.
 */
export function listenFailureText(error: unknown, host: string, port: number): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `cannot listen on ${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `${where}: the port is in use (EADDRINUSE): stop what listens there (a server already running?), or choose another port with IOBOXX_HTTP_PORT`;
    case 'EACCES':
      return `${where}: permission denied (EACCES): a port below 1024 needs privileges; choose another with IOBOXX_HTTP_PORT`;
    case 'EADDRNOTAVAIL':
      return `${where}: no interface of this machine has that address (EADDRNOTAVAIL): set IOBOXX_HTTP_HOST to one of its addresses`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `${where}: the host ${host} does not resolve (${code}): set IOBOXX_HTTP_HOST to an address of this machine`;
    default:
      return undefined;
  }
}
