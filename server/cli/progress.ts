/** Progress bars for long CLI runs, on a TTY only (stderr, so --json stdout stays clean). */
import cliProgress from 'cli-progress';

export type ProgressFn = (phase: string, done: number, total: number) => void;

/** What a shell reports for a run ended by the signal: 128 + its number. */
export const signalExitCodes = { SIGINT: 130, SIGTERM: 143 } as const;
type StopSignal = keyof typeof signalExitCodes;
const stopSignals = Object.keys(signalExitCodes) as StopSignal[];

/**
 * The bar's values as cli-progress writes them, but its eta in seconds, or `?` while it cannot
 * tell (no progress yet, or none lately): its own 'NULL' and 'INF' read as errors.
 */
const withEtaSeconds: typeof cliProgress.Format.ValueFormat = (value, options, type) =>
  type === 'eta' ? (typeof value === 'number' ? `${value}s` : '?') : cliProgress.Format.ValueFormat(value, options, type);

export function ttyProgress(enabled = process.stderr.isTTY === true, stream: NodeJS.WritableStream = process.stderr): { onProgress: ProgressFn; stop(): void } {
  if (!enabled) return { onProgress: () => undefined, stop: () => undefined };
  const bars = new cliProgress.MultiBar(
    { stream, clearOnComplete: false, hideCursor: true, format: '{phase} [{bar}] {value}/{total} {percentage}% eta {eta}', formatValue: withEtaSeconds },
    cliProgress.Presets.shades_classic,
  );
  const byPhase = new Map<string, cliProgress.SingleBar>();
  // Shown bars hide the cursor and turn line wrap off until stop(): Ctrl-C or a kill must not
  // leave the terminal that way, so while they are shown a signal stops them before exiting.
  const onSignal = (signal: StopSignal) => {
    stop();
    stream.write('interrupted\n');
    process.exit(signalExitCodes[signal]);
  };
  let listening = false;
  const stop = () => {
    if (listening) for (const signal of stopSignals) process.off(signal, onSignal);
    listening = false;
    bars.stop();
  };
  return {
    onProgress(phase, done, total) {
      // Before the first bar writes its escape codes: a signal in between would leave them.
      if (!listening) for (const signal of stopSignals) process.on(signal, onSignal);
      listening = true;
      let bar = byPhase.get(phase);
      if (!bar) byPhase.set(phase, (bar = bars.create(Math.max(total, 1), 0, { phase })));
      bar.setTotal(Math.max(total, 1));
      bar.update(done, { phase });
    },
    stop,
  };
}
