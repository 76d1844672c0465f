/**
 * Graceful shutdown on SIGTERM / SIGINT, in the order that loses nothing:
 *   1. stop accepting (close listeners, refuse new calls, /readyz says draining),
 *   2. let in-flight calls finish,
 *   3. close stores (each finishes its last batch, fdatasyncs and writes its checkpoint),
 * then exit 0. If that takes longer than `boundMs`, exit `exitCodeTimedOut`. A second signal
 * exits at once with `exitCodeForced`: every acknowledged write is already fdatasync'ed
 * (durable before visible), so stopping mid-drain loses only calls never acknowledged.
 *
 * A signal within `signalEchoMs` of the first is that one delivered twice, not a second: a
 * Ctrl-C under `npm start` reaches the server from the terminal (its process group) and again
 * from npm, which forwards it, microseconds apart. Taken as a second, it skipped the graceful
 * shutdown. No person presses Ctrl-C twice that fast.
 */

export const shutdownBoundMsDefault = 10_000;
export const exitCodeTimedOut = 1;
/** 128 + SIGTERM, as a shell reports a process ended by the signal. */
export const exitCodeForced = 143;
/** Signals this soon after the first are its echo (see above), not a second. */
export const signalEchoMs = 250;

export interface ShutdownSteps {
  /** Close listeners and refuse new calls. */
  readonly stopAccepting: () => void | Promise<void>;
  /** Resolves when the calls already admitted are done. */
  readonly drain: () => Promise<void>;
  /** Close every open store (and any other resource that flushes on close). */
  readonly close: () => Promise<void>;
}

export interface ShutdownOptions extends ShutdownSteps {
  readonly boundMs?: number;
  readonly signals?: readonly NodeJS.Signals[];
  /** Progress and problems; default stderr lines (stdout may be the MCP channel). */
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
  /** Injected by tests of this module; defaults to process.exit. */
  readonly exit?: (code: number) => void;
}

export interface GracefulShutdown {
  /** Run the shutdown as if a signal came (e.g. stdin closed in stdio mode). */
  begin(reason: string): Promise<void>;
  readonly started: boolean;
  /** Remove the signal handlers (tests). */
  dispose(): void;
}

const stderrLog = (message: string, fields?: Record<string, unknown>) =>
  process.stderr.write(`${JSON.stringify({ msg: message, ...fields })}\n`);

export function installGracefulShutdown(options: ShutdownOptions): GracefulShutdown {
  const boundMs = options.boundMs ?? shutdownBoundMsDefault;
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const log = options.log ?? stderrLog;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let started = false;
  /** When the first signal came (undefined: none yet, or the shutdown was begun without one). */
  let firstSignalAtMs: number | undefined;
  let exited = false;
  const exitOnce = (code: number) => {
    if (exited) return;
    exited = true;
    exit(code);
  };

  const run = async (reason: string): Promise<void> => {
    const startMs = performance.now();
    const timer = setTimeout(() => {
      log('shutdown bound passed; exiting with work unfinished (acknowledged work is durable)', { boundMs });
      exitOnce(exitCodeTimedOut);
    }, boundMs); // not unref'ed: it keeps the process alive until the steps end or the bound passes
    try {
      log('shutting down: no longer accepting', { reason });
      await options.stopAccepting();
      await options.drain();
      log('in-flight calls done; closing stores');
      await options.close();
      clearTimeout(timer);
      log('shutdown complete', { ms: Math.round(performance.now() - startMs) });
      exitOnce(0);
    } catch (error) {
      clearTimeout(timer);
      log('shutdown failed', { error: error instanceof Error ? error.message : String(error) });
      exitOnce(exitCodeTimedOut);
    }
  };

  const onSignal = (signal: NodeJS.Signals) => {
    const nowMs = performance.now();
    if (started && firstSignalAtMs !== undefined && nowMs - firstSignalAtMs < signalEchoMs) return;
    if (started) {
      log('second signal: exiting now (acknowledged work is already durable)', { signal });
      exitOnce(exitCodeForced);
      return;
    }
    started = true;
    firstSignalAtMs = nowMs;
    void run(signal);
  };
  for (const s of signals) process.on(s, onSignal);

  return {
    begin(reason: string) {
      if (started) return Promise.resolve();
      started = true;
      return run(reason);
    },
    get started() {
      return started;
    },
    dispose() {
      for (const s of signals) process.off(s, onSignal);
    },
  };
}
