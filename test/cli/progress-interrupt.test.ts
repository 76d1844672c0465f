/**
 * Ctrl-C or SIGTERM during a long `store verify` (or `store inspect`) on a terminal: the progress bars stop first, so
 * the terminal gets its cursor and line wrap back, then `interrupted` and exit 130 (143). Runs
 * the CLI under a pseudo-terminal (cli-terminal.ts), where stderr is a TTY and bars show.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hideCursor, onTerminal } from './cli-terminal.js';
import { writeMemoryStore } from './memory-store.js';

const showCursor = '\x1b[?25h';
const lineWrapOn = '\x1b[?7h';
const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-progress-'));
const big = path.join(work, 'big');

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
    const { code, output } = await onTerminal(['store', 'verify', dir], interrupt);
    expect(output, 'the verify ended before the signal came').not.toContain('state hash');
    expect(code, output).toBe(exitCode);
    const afterBars = output.slice(output.lastIndexOf(hideCursor));
    expect(afterBars).toContain(showCursor);
    expect(afterBars).toContain(lineWrapOn);
    expect(afterBars.indexOf('interrupted')).toBeGreaterThan(afterBars.indexOf(showCursor));
  });

  test('store inspect shows bars too (it reads every segment, then runs the open), and Ctrl-C ends it the same way', async () => {
    const { code, output } = await onTerminal(['store', 'inspect', big], (terminal) => terminal.write('\x03'));
    expect(output, 'no progress bar showed: the inspect ran to its end').not.toContain('segments of');
    expect(code, output).toBe(130);
    const afterBars = output.slice(output.lastIndexOf(hideCursor));
    expect(afterBars).toContain(showCursor);
    expect(afterBars.indexOf('interrupted')).toBeGreaterThan(afterBars.indexOf(showCursor));
  });
});
