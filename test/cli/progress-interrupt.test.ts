/**
 * Ctrl-C or SIGTERM during a long `store verify` on a terminal: the progress bars stop first, so
 * the terminal gets its cursor and line wrap back, then `interrupted` and exit 130 (143). Runs
 * the CLI under a pseudo-terminal (util-linux `script`, in Debian's essential bsdutils), where stderr is a TTY and bars show.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cliCommand, cliEnv, root } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const hideCursor = '\x1b[?25l';
const showCursor = '\x1b[?25h';
const lineWrapOn = '\x1b[?7h';
const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-progress-'));
const big = path.join(work, 'big');

/**
 * `store verify DIR` on a pseudo-terminal; `interrupt` runs once the bars hid the cursor (the
 * verify is then replaying), with the CLI's pid. Returns the exit code and all the terminal got.
 */
function verifyOnTerminal(dir: string, interrupt: (terminalInput: NodeJS.WritableStream, pid: number) => void): Promise<{ code: number | null; output: string }> {
  const command = `echo pid $$; exec ${cliCommand(['store', 'verify', dir]).map((a) => `'${a}'`).join(' ')}`;
  const child = spawn('script', ['-qefc', command, '/dev/null'], { cwd: root, env: cliEnv() });
  let output = '';
  let interrupted = false;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (!interrupted && output.includes(hideCursor)) {
      interrupted = true;
      interrupt(child.stdin, Number(/pid (\d+)/.exec(output)![1]));
    }
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

beforeAll(async () => {
  // Small segments: the replay turns the event loop between them, where a signal is handled.
  await writeMemoryStore(big, 60_000, 256 * 1024);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('a signal while progress bars show', () => {
  test.each([
    ['Ctrl-C', 130, (terminal: NodeJS.WritableStream) => terminal.write('\x03')],
    ['SIGTERM', 143, (_terminal: NodeJS.WritableStream, pid: number) => process.kill(pid, 'SIGTERM')],
  ] as const)('%s: the bars stop, the terminal is restored, "interrupted", exit %i', async (_name, exitCode, interrupt) => {
    const dir = path.join(work, `copy-${exitCode}`);
    cpSync(big, dir, { recursive: true });
    const { code, output } = await verifyOnTerminal(dir, interrupt);
    expect(output, 'the verify ended before the signal came').not.toContain('state hash');
    expect(code, output).toBe(exitCode);
    const afterBars = output.slice(output.lastIndexOf(hideCursor));
    expect(afterBars).toContain(showCursor);
    expect(afterBars).toContain(lineWrapOn);
    expect(afterBars.indexOf('interrupted')).toBeGreaterThan(afterBars.indexOf(showCursor));
  });
});
