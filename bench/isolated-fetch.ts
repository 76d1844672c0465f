/**
 * A fetch for the SDK's HTTP client transports in long benchmark runs. The SDK passes one
 * connection-wide AbortSignal to every fetch, and undici adds an abort listener to it per
 * request that goes only when the request object is collected: over thousands of calls the
 * listeners pile up (Node warns past 1,500) and each call's client CPU grows with them, which
 * the figures would charge to the server (measured: ~1.8 ms of client CPU per HTTP call).
 * Here each request gets its own signal, linked to the caller's by a listener removed once the
 * answer is read, or kept for an event stream (which the caller's abort must still end).
 */
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';

export const isolatedFetch: FetchLike = async (url, init) => {
  const outer = init?.signal;
  if (!outer) return fetch(url, init);
  const own = new AbortController();
  const forward = (): void => own.abort(outer.reason);
  if (outer.aborted) forward();
  else outer.addEventListener('abort', forward, { once: true });
  try {
    const response = await fetch(url, { ...init, signal: own.signal });
    if (!(response.headers.get('content-type') ?? '').includes('text/event-stream')) outer.removeEventListener('abort', forward);
    return response;
  } catch (error) {
    outer.removeEventListener('abort', forward);
    throw error;
  }
};
