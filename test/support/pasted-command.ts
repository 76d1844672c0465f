/**
 * A command a hint prints, run as an operator who pastes it would: by `sh -c`, with
 * `ioboxx-memory` on PATH as a script that runs the given command line (the source CLI or the
 * built one), so the hint's quoting is the shell's to read.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { runProcess, type ProcessOutcome } from './run-process.js';

// Always quoted, not storage/shell-word.ts: that one reads a leading - as a path's (./-x); here it is an option (--import).
const quoted = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;

export async function runPasted(command: string, ioboxxMemory: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<ProcessOutcome> {
  const bin = mkdtempSync(path.join(tmpdir(), 'ioboxx-pasted-'));
  try {
    writeFileSync(path.join(bin, 'ioboxx-memory'), `#!/bin/sh\nexec ${ioboxxMemory.map(quoted).join(' ')} "$@"\n`);
    chmodSync(path.join(bin, 'ioboxx-memory'), 0o755);
    return await runProcess('sh', ['-c', command], { cwd: options.cwd, env: { ...options.env, PATH: `${bin}:${options.env.PATH ?? ''}` } });
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}
