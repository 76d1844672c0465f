/**
 * The real CLI on a pseudo-terminal (util-linux `script`, in Debian's essential bsdutils), where
 * stderr is a TTY and progress bars show: what an operator at a shell sees, Ctrl-C included.
 */
import { spawn } from 'node:child_process';
import { cliCommand, cliEnv, root } from './cli-process.js';

/** What progress bars write first: they hide the cursor (the long run is then under way). */
export const hideCursor = '\x1b[?25l';

/**
 * `ioboxx-memory ...args` on a pseudo-terminal; `interrupt` runs once the bars hid the cursor, with
 * the terminal's input (write '\x03' for Ctrl-C) and the CLI's pid. Returns the exit code and all the terminal got.
 */
export function onTerminal(args: readonly string[], interrupt: (terminalInput: NodeJS.WritableStream, pid: number) => void): Promise<{ code: number | null; output: string }> {
  const command = `echo pid $$; exec ${cliCommand(args).map((a) => `'${a}'`).join(' ')}`;
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
