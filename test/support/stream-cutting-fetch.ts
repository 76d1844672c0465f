/**
 * A fetch for an SDK client's transport that lets a test play the network under its GET event
 * streams: cut the open stream (its request aborted, as by a drop), hold the client's reconnect
 * until the test has done what the gap is for, and see each GET (its Last-Event-ID, its status)
 * and each stream's end. Every other request goes through untouched; `headers` (a fresh token,
 * say) is laid over each request's own.
 */
export interface StreamGet {
  readonly lastEventId: string | null;
  status?: number;
}

export interface StreamCuttingFetch {
  readonly fetch: (url: string | URL, init?: RequestInit) => Promise<Response>;
  /** Every GET the client sent, in order. */
  readonly gets: readonly StreamGet[];
  /** How many GET streams have ended (cut, or ended by the server). */
  readonly streamsEnded: () => number;
  /** The client's next GET waits until reconnect(). */
  hold(): void;
  /** hold(), then cut the open stream. */
  cut(): void;
  /** Lets the held GET go. */
  reconnect(): void;
}

export function streamCuttingFetch(headers: () => Record<string, string> = () => ({})): StreamCuttingFetch {
  let stream: AbortController | undefined;
  let held: Promise<void> | undefined;
  let release = (): void => undefined;
  let ended = 0;
  const gets: StreamGet[] = [];
  const withHeaders = (init: RequestInit | undefined): RequestInit => {
    const merged = new Headers(init?.headers);
    for (const [name, value] of Object.entries(headers())) merged.set(name, value);
    return { ...init, headers: merged };
  };
  const hold = () => {
    if (held === undefined) held = new Promise<void>((resolve) => (release = resolve));
  };
  return {
    gets,
    streamsEnded: () => ended,
    async fetch(url, init) {
      if (init?.method !== 'GET') return fetch(url, withHeaders(init));
      await held;
      const get: StreamGet = { lastEventId: new Headers(init.headers).get('last-event-id') };
      gets.push(get);
      stream = new AbortController();
      const signal = init.signal ? AbortSignal.any([init.signal, stream.signal]) : stream.signal;
      const answer = await fetch(url, { ...withHeaders(init), signal });
      get.status = answer.status;
      if (answer.body === null || !answer.ok) return answer;
      let counted = false;
      const count = () => {
        if (!counted) ended += 1;
        counted = true;
      };
      signal.addEventListener('abort', count, { once: true });
      const body = answer.body.pipeThrough(new TransformStream({ flush: count }));
      return new Response(body, { status: answer.status, statusText: answer.statusText, headers: answer.headers });
    },
    hold,
    cut() {
      hold();
      stream?.abort(new Error('network cut (test)'));
    },
    reconnect() {
      held = undefined;
      release();
    },
  };
}
