/** The MCP surface over HTTP on 127.0.0.1: Streamable HTTP (both eras) and legacy HTTP+SSE. */
import { connectNewerHttp, connectOlderHttp, connectOlderSse } from '../support/mcp-clients.js';
import { describeSurface, httpWay } from './fixtures/surface-suite.js';

describeSurface(httpWay('Streamable HTTP, older-era client', connectOlderHttp, '/mcp'));
describeSurface(httpWay('Streamable HTTP, newer-era client', connectNewerHttp, '/mcp'));
describeSurface(httpWay('legacy HTTP+SSE, older-era client', connectOlderSse, '/sse'));
