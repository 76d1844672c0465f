/**
 * The real built server as a child process, for end-to-end tests: `node bin/ioboxx-memory.js
 * serve --http` on port 0, its URL read from the `http server listening` log line on stderr.
 * The environment is explicit (plus PATH/HOME): nothing leaks in from the test runner's
 * DATABASE_URL or S3_* variables. `npm run build` must have run (dist/ is what `bin/` loads).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { childExit } from '../support/child-exit.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * The CLI entry the tests spawn. IOBOXX_E2E_SERVER_MAIN swaps it for another build of
 * `server/cli/main.js` (to try a fix before it lands); by default the shipped `bin/` shim.
 */
export const serverBin = process.env.IOBOXX_E2E_SERVER_MAIN ?? path.join(repoRoot, 'bin', 'ioboxx-memory.js');

/** How long a server may take to listen and connect its control plane (PGlite is slow to start on a busy VM). */
const listeningWaitMs = 60_000;
/** Clients start once the control plane is connected too: the tests use run history and audit staging. */
const readyMessages = ['http server listening', 'control plane ready'] as const;
/** Stderr kept for failure messages. */
const stderrKeptChars = 8_000;

/** The variables a child needs besides the ones a test names. */
export function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  /** Origin, e.g. http://127.0.0.1:40123 */
  readonly url: string;
  /** Everything logged so far (JSON lines), trimmed to the newest characters. */
  stderr(): string;
  /** SIGKILL: no shutdown path runs. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

/**
 * The first JSON log line in `log` (a ServerProcess's stderr()) that `matches`: lines that are not
 * JSON (a Node warning, the first line cut by the trim) are passed over.
 */
export function findLogLine<Line extends { msg?: string }>(log: string, matches: (line: Line) => boolean): Line | undefined {
  for (const text of log.split('\n')) {
    if (!text.startsWith('{')) continue;
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
    } catch {
      continue;
    }
    if (matches(line)) return line;
  }
  return undefined;
}

function exited(child: ChildProcess): Promise<number | null> {
  return childExit(child).then((end) => end.code);
}

export interface StartOptions {
  /**
   * A command that runs the server as its last arguments, e.g. `nsenter` into a mount namespace
   * (server-full-disk.test.ts): it must exec node, so that the child's pid and signals are the server's.
   */
  readonly launcher?: readonly string[];
  /** false: resolve once the server listens, not waiting for its control plane (one that cannot start yet, on a full disk). */
  readonly awaitControlPlane?: boolean;
}

export async function startHttpServer(env: Record<string, string>, options: StartOptions = {}): Promise<ServerProcess> {
  const [command, ...args] = [...(options.launcher ?? []), process.execPath, serverBin, 'serve', '--http'];
  const child = spawn(command!, args, {
    cwd: repoRoot,
    env: { ...baseEnv(), IOBOXX_HTTP_PORT: '0', IOBOXX_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // never leave a server behind a failed start
      reject(new Error(`server did not log ${readyMessages.join(' and ')} within ${listeningWaitMs} ms:\n${log}`));
    }, listeningWaitMs);
    let listeningUrl: string | undefined;
    let controlReady = false;
    createInterface({ input: child.stderr! }).on('line', (line) => {
      log = (log + line + '\n').slice(-stderrKeptChars);
      if (!line.startsWith('{')) return; // e.g. a Node warning, not a log line
      const message = JSON.parse(line) as { msg?: string; url?: string };
      if (message.msg === readyMessages[0]) listeningUrl = message.url;
      if (message.msg === readyMessages[1]) controlReady = true;
      if (listeningUrl === undefined || (!controlReady && options.awaitControlPlane !== false)) return;
      clearTimeout(timer);
      resolve(listeningUrl);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${log}`));
    });
  });
  return {
    child,
    url,
    stderr: () => log,
    kill: async () => {
      child.kill('SIGKILL');
      await exited(child);
    },
    stop: async () => {
      child.kill('SIGTERM');
      return exited(child);
    },
  };
}
