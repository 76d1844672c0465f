/** The MCP surface over stdio: a spawned child process, real clients of both eras. */
import { connectNewerStdio, connectOlderStdio } from '../support/mcp-clients.js';
import { describeSurface, stdioWay } from './fixtures/surface-suite.js';

describeSurface(stdioWay('stdio, older-era client', connectOlderStdio));
describeSurface(stdioWay('stdio, newer-era client', connectNewerStdio));
