/** Progress bars for long CLI runs, on a TTY only (stderr, so --json stdout stays clean). */
import cliProgress from 'cli-progress';

export type ProgressFn = (phase: string, done: number, total: number) => void;

export function ttyProgress(enabled = process.stderr.isTTY === true): { onProgress: ProgressFn; stop(): void } {
  if (!enabled) return { onProgress: () => undefined, stop: () => undefined };
  const bars = new cliProgress.MultiBar(
    { stream: process.stderr, clearOnComplete: false, hideCursor: true, format: '{phase} [{bar}] {value}/{total} {percentage}% eta {eta}s' },
    cliProgress.Presets.shades_classic,
  );
  const byPhase = new Map<string, cliProgress.SingleBar>();
  return {
    onProgress(phase, done, total) {
      let bar = byPhase.get(phase);
      if (!bar) byPhase.set(phase, (bar = bars.create(Math.max(total, 1), 0, { phase })));
      bar.setTotal(Math.max(total, 1));
      bar.update(done, { phase });
    },
    stop: () => bars.stop(),
  };
}
