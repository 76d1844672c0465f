/**
 * Run the crash-test child (test/crash/commit-child.ts: 32 callers committing `bump` forever, one
 * `ack OFFSET BY` line per acknowledgement) on a store directory and SIGKILL it once it has
 * acknowledged `killAfterAcks` calls. Resolves with offset -> by of every acknowledgement seen.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

const child = path.join(import.meta.dirname, 'commit-child.ts');

export function runAndKill(dir: string, killAfterAcks: number): Promise<Map<number, number>> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acks = new Map<number, number>();
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let killed = false;
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const [kind, a, b] = line.split(' ');
      if (kind === 'ack') acks.set(Number(a), Number(b));
      if (!killed && acks.size >= killAfterAcks) {
        killed = true;
        proc.kill('SIGKILL');
      }
    });
    proc.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve(acks) : reject(new Error(`child exited ${code}: ${stderr}`))));
  });
}
