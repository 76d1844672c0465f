/**
 * A backup interrupted midway leaves nothing to mistake for a backup. Ctrl-C on a terminal and
 * SIGTERM remove its partial copy (DEST.partial-<pid>, or DEST/.partial-<pid> in an empty DEST the
 * operator made), say so and exit 130 / 143; SIGKILL leaves only DEST.partial-<pid>, which restore
 * refuses naming the missing manifest, and which the next backup into DEST removes and names. DEST appears only whole, the rerun succeeds, and the store backed
 * up is the same, byte for byte. The real CLI, on a real memory store (60 000 objects, ~17 MB).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { backupManifestFileName } from '../../storage/backup/backup-manifest.js';
import { removeCommand } from '../../storage/backup/scratch-dir.js';
import { cli, cliCommand, cliEnv, root } from './cli-process.js';
import { onTerminal } from './cli-terminal.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-backup-interrupt-'));
const dataDir = path.join(work, 'data');
const storeDir = path.join(dataDir, 'tenants', 'acme');
let storeBefore: Record<string, string> = {};

beforeAll(async () => {
  await writeMemoryStore(storeDir, 60_000, 256 * 1024);
  storeBefore = fingerprint(storeDir);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Every file under `dir` by its relative path, with its SHA-256: what "unchanged" means. */
function fingerprint(dir: string, at = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(path.join(dir, at)).sort()) {
    const relative = path.join(at, name);
    const full = path.join(dir, relative);
    if (statSync(full).isDirectory()) Object.assign(out, fingerprint(dir, relative));
    else out[relative] = createHash('sha256').update(readFileSync(full)).digest('hex');
  }
  return out;
}

function backupArgs(dest: string, ...more: string[]): string[] {
  return ['backup', 'acme', dest, '--data-dir', dataDir, ...more];
}

/** DEST and whatever bears its name beside it (DEST.partial-<pid>): what the backup left. */
function leftBeside(dest: string): string[] {
  const base = path.basename(dest);
  return readdirSync(path.dirname(dest)).filter((n) => n === base || n.startsWith(`${base}.`)).sort();
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * `backup acme DEST` without a terminal, resolved once it is midway: its copy is written and being
 * proven (a `.prove-` scratch in DEST.partial-<pid> or DEST/.partial-<pid>, or in DEST itself as
 * the old code wrote it).
 */
async function backupMidway(dest: string, ...more: string[]): Promise<{ pid: number; exited: Promise<Exit> }> {
  const [command, ...args] = cliCommand(backupArgs(dest, ...more));
  const child = spawn(command!, args, { cwd: root, env: cliEnv() });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<Exit>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  const scratches = [`${dest}.partial-${child.pid}`, path.join(dest, `.partial-${child.pid}`), dest];
  const proving = () => scratches.some((d) => existsSync(d) && readdirSync(d).some((n) => n.startsWith('.prove-')));
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (!proving()) return;
      clearInterval(poll);
      resolve();
    }, 5);
    void exited.then((e) => {
      clearInterval(poll);
      reject(new Error(`the backup ended before it was midway: ${JSON.stringify(e)}`));
    });
  });
  return { pid: child.pid!, exited };
}

function expectStoreUnchanged(): void {
  expect(fingerprint(storeDir), 'the store backed up changed').toEqual(storeBefore);
}

async function expectRerunWhole(dest: string): Promise<string> {
  const rerun = await cli(backupArgs(dest));
  expect(rerun.code, rerun.stderr).toBe(0);
  expect(leftBeside(dest)).toEqual([path.basename(dest)]);
  expect(existsSync(path.join(dest, backupManifestFileName))).toBe(true);
  return rerun.stdout;
}

test('Ctrl-C on a terminal: exit 130, the partial copy is removed and said so, DEST never appears; a rerun succeeds', async () => {
  const dest = path.join(work, 'ctrl-c');
  const { code, output } = await onTerminal(backupArgs(dest), (terminal) => terminal.write('\x03'));
  expect(output, 'the backup ended before the signal came').not.toContain('state hash');
  expect(code, output).toBe(130);
  expect(output).toContain('interrupted');
  expect(output).toMatch(new RegExp(`backup interrupted by SIGINT: nothing was written to ${dest}, and its partial copy ${dest}\\.partial-\\d+ is removed`));
  expect(leftBeside(dest), 'an interrupted backup left this behind').toEqual([]);
  await expectRerunWhole(dest);
  expectStoreUnchanged();
});

test('SIGTERM without a terminal, into an empty DEST the operator made: exit 143, one JSON object saying the partial copy is removed, DEST left empty; a rerun succeeds', async () => {
  const dest = path.join(work, 'sigterm');
  mkdirSync(dest);
  const { pid, exited } = await backupMidway(dest, '--json');
  process.kill(pid, 'SIGTERM');
  const { code, signal, stdout } = await exited;
  expect({ code, signal }).toEqual({ code: 143, signal: null });
  expect(JSON.parse(stdout)).toEqual({
    ok: false, code: 'interrupted',
    message: `backup interrupted by SIGTERM: nothing was written to ${dest}, and its partial copy ${dest}/.partial-${pid} is removed`,
  });
  expect(leftBeside(dest)).toEqual([path.basename(dest)]);
  expect(readdirSync(dest), 'an interrupted backup left this in DEST').toEqual([]);
  await expectRerunWhole(dest);
  expectStoreUnchanged();
});

test('SIGKILL leaves only DEST.partial-<pid>: restore refuses it naming the missing manifest, the next backup removes it and says so, and restores', async () => {
  const dest = path.join(work, 'sigkill');
  const { pid, exited } = await backupMidway(dest);
  process.kill(pid, 'SIGKILL');
  expect((await exited).signal).toBe('SIGKILL');
  const partial = `${dest}.partial-${pid}`;
  expect(leftBeside(dest), 'a killed backup must leave DEST absent and its partial copy named as such').toEqual([path.basename(partial)]);

  const restoreData = path.join(work, 'restored-data');
  const fromPartial = await cli(['restore', partial, 'acme', '--data-dir', restoreData]);
  expect(fromPartial.code, fromPartial.stderr).toBe(3);
  expect(fromPartial.stderr).toContain(`backup does not verify: ${partial}/${backupManifestFileName}: missing: ${partial} is the partial copy of a backup into ${dest} by process ${pid}, which was interrupted; it is not a backup`);
  expect(fromPartial.stderr).toContain(removeCommand(partial));
  const fromDest = await cli(['restore', dest, 'acme', '--data-dir', restoreData]);
  expect(fromDest.code, fromDest.stderr).toBe(1);
  expect(fromDest.stderr).toContain(`backup directory ${dest} does not exist\n  ${partial} is the partial copy an interrupted backup into it left, not a backup`);
  expect(existsSync(path.join(restoreData, 'tenants', 'acme')), 'a refused restore restored something').toBe(false);

  const rerun = await expectRerunWhole(dest);
  expect(rerun).toContain(`removed      ${partial} (what an interrupted backup into ${dest} left)`);
  const restored = await cli(['restore', dest, 'acme', '--data-dir', restoreData, '--json']);
  expect(restored.code, restored.stderr).toBe(0);
  expect(JSON.parse(restored.stdout)).toMatchObject({ ok: true, endOffset: 59_999, stateHashVerified: true });
  expectStoreUnchanged();
});
