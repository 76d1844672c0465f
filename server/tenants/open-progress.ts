/**
 * Progress of tenant store opens, for the requests that wait on them. A store's open reports its
 * phases (the log scan, the snapshot load, the replay: StoreOptions.onProgress) under its tenant;
 * a request that asked for progress (an MCP progressToken) listens under its own tenant while it
 * runs. Why by tenant and not through the lease: every request waiting on one open hears it, the
 * one that started it and the ones that joined, and the registry stays free of request concerns.
 * A store already open reports nothing, so a request on it hears nothing; an open nobody listens
 * to costs a map lookup per report (a few hundred per million replayed frames).
 */
import type { StoreOptions } from '../../storage/store.js';

export type OpenProgressListener = NonNullable<StoreOptions['onProgress']>;

/** Requests listening to one tenant's open; past it a request goes without progress (it still gets its answer). */
export const openProgressListenersMax = 1000;

export class OpenProgress {
  private readonly listeners = new Map<string, Set<OpenProgressListener>>();

  /** The onProgress of `tenant`'s store open. A listener that throws is dropped from this report, not the open. */
  reporter(tenant: string): OpenProgressListener {
    return (phase, done, total) => {
      const listening = this.listeners.get(tenant);
      if (listening === undefined) return;
      for (const listener of listening) {
        try {
          listener(phase, done, total);
        } catch {
          // A request's own failure to pass progress on must not fail the open others wait for.
        }
      }
    };
  }

  /** Hear `tenant`'s opens until the returned function is called (once the request is answered). */
  listen(tenant: string, listener: OpenProgressListener): () => void {
    let listening = this.listeners.get(tenant);
    if (listening === undefined) this.listeners.set(tenant, (listening = new Set()));
    if (listening.size >= openProgressListenersMax) return () => undefined;
    // Its own function per call: the same listener given twice is two listeners.
    const own: OpenProgressListener = (phase, done, total) => listener(phase, done, total);
    listening.add(own);
    return () => {
      listening.delete(own);
      if (listening.size === 0 && this.listeners.get(tenant) === listening) this.listeners.delete(tenant);
    };
  }

  /** Tenants with a listener now (tests: nothing is left behind once requests are answered). */
  get tenantsListened(): number {
    return this.listeners.size;
  }
}
