/**
 * The graceful shutdown helper in a real child process: SIGTERM during a write burst exits 0
 * with every acknowledged write present after reopening; a second signal exits at once, and a
 * stuck drain exits after the bound, both still with every acknowledged write present.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, test, vi } from 'vitest';
import { exitCodeForced, exitCodeTimedOut, installGracefulShutdown, signalEchoMs } from '../../server/ops/shutdown.js';
import { Store } from '../../storage/store.js';
import { counterModule } from '../support/counter-module.js';
import { childExit } from '../support/child-exit.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const childEntry = path.join(root, 'test/ops/fixtures/shutdown-child.ts');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Run {
  readonly child: ChildProcess;
  readonly acks: Map<string, { offset: number; n: number }>;
  readonly exited: Promise<number | null>;
  /** Resolves when the child printed `count` acks. */
  acked(count: number): Promise<void>;
  /** Resolves when stderr contains `text`. */
  said(text: string): Promise<void>;
}

function start(dir: string, mode: 'normal' | 'stuck'): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', childEntry, dir, mode], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const acks = new Map<string, { offset: number; n: number }>();
  let stdoutRest = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((l) => l());
  child.stdout!.on('data', (d: Buffer) => {
    const lines = (stdoutRest + d.toString()).split('\n');
    stdoutRest = lines.pop()!;
    for (const line of lines) {
      const [kind, offset, id, n] = line.split(' ');
      if (kind === 'ack') acks.set(id!, { offset: Number(offset), n: Number(n) });
    }
    notify();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    notify();
  });
  const exited = childExit(child).then((end) => end.code);
  const until = (done: () => boolean) => new Promise<void>((resolve, reject) => {
    const check = () => {
      if (done()) {
        listeners.delete(check);
        resolve();
      }
    };
    listeners.add(check);
    void exited.then(() => (done() ? resolve() : reject(new Error(`child exited early; stderr:\n${stderr}`))));
    check();
  });
  return { child, acks, exited, acked: (count) => until(() => acks.size >= count), said: (text) => until(() => stderr.includes(text)) };
}

async function expectEveryAckPresent(dir: string, acks: Run['acks']): Promise<void> {
  const store = await Store.open({ dir, module: counterModule });
  try {
    const missing = await store.read((view) => [...acks].filter(([id, a]) => view.table('objects').get([id])?.n !== a.n).map(([id]) => id));
    expect(missing, `acknowledged writes lost: ${missing.slice(0, 10).join(', ')}`).toEqual([]);
    expect(store.lastOffset).toBeGreaterThanOrEqual(Math.max(...[...acks.values()].map((a) => a.offset)));
  } finally {
    await store.close();
  }
}

function storeDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-shutdown-'));
  dirs.push(dir);
  return dir;
}

test('SIGTERM during a write burst: exit 0, every acknowledged write present after reopening', async () => {
  const dir = storeDir();
  const run = start(dir, 'normal');
  await run.acked(300);
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(0);
  await expectEveryAckPresent(dir, run.acks);
}, 60_000);

test('a second signal exits at once while a call is stuck, and nothing acknowledged is lost', async () => {
  const dir = storeDir();
  const run = start(dir, 'stuck');
  await run.acked(100);
  run.child.kill('SIGTERM');
  await run.said('no longer accepting');
  await new Promise((resolve) => setTimeout(resolve, signalEchoMs + 100)); // past the first signal's echo
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(exitCodeForced);
  await expectEveryAckPresent(dir, run.acks);
}, 60_000);

// A Ctrl-C under `npm start` reaches the server twice (the terminal, and npm forwarding it): taken as a second signal, it skipped the graceful shutdown.
// In process, so the two deliveries stay two (the kernel merges two pending signals of a child into one).
test('the same signal twice at once (one Ctrl-C delivered twice) is one: the graceful shutdown runs and exits 0', async () => {
  const exits: number[] = [];
  let closed = false;
  const shutdown = installGracefulShutdown({
    signals: ['SIGUSR2'], log: () => undefined, exit: (code) => exits.push(code),
    stopAccepting: () => undefined, drain: async () => undefined,
    close: async () => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      closed = true;
    },
  });
  try {
    process.emit('SIGUSR2', 'SIGUSR2');
    process.emit('SIGUSR2', 'SIGUSR2');
    await vi.waitFor(() => expect(exits).toHaveLength(1));
    expect(exits).toEqual([0]);
    expect(closed).toBe(true);
  } finally {
    shutdown.dispose();
  }
});

test('a drain that never ends exits after the bound, and nothing acknowledged is lost', async () => {
  const dir = storeDir();
  const run = start(dir, 'stuck');
  await run.acked(100);
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(exitCodeTimedOut);
  await expectEveryAckPresent(dir, run.acks);
}, 60_000);
