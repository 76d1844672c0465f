/**
 * A restore killed midway (SIGKILL, the machine went down) leaves its scratch copy beside the
 * target, `tenants/T.restoring-PID`, up to a whole store, which only the next restore of T removes:
 * `tenants list` names it with the command that removes it, so its disk space is not lost unseen,
 * and tells a restore still under way apart. The real CLI.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { removeCommand, scratchDirOf } from '../../storage/backup/scratch-dir.js';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-restores-left-'));
const dataDir = path.join(work, 'data');
const tenants = path.join(dataDir, 'tenants');
/** A pid that names no process now: one that has exited. */
const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
const killed = scratchDirOf(path.join(tenants, 'beta'), 'restore', deadPid);
const running = scratchDirOf(path.join(tenants, 'gamma'), 'restore', process.pid);

beforeAll(async () => {
  await writeMemoryStore(path.join(tenants, 'acme'), 10, 64 * 1024);
  mkdirSync(path.join(killed, 'log'), { recursive: true });
  mkdirSync(path.join(running, 'log'), { recursive: true });
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

test('tenants list names the scratch copy a killed restore left, with the command that removes it, and a restore under way as such', async () => {
  const json = await cli(['tenants', 'list', '--json', '--data-dir', dataDir]);
  expect(json.code, json.stderr).toBe(0);
  const report = JSON.parse(json.stdout) as { tenants: { tenant: string }[]; restoresLeftBehind: unknown[] };
  expect(report.tenants.map((t) => t.tenant)).toEqual(['acme']);
  expect(report.restoresLeftBehind).toEqual([
    { dir: killed, target: path.join(tenants, 'beta'), pid: deadPid, running: false },
    { dir: running, target: path.join(tenants, 'gamma'), pid: process.pid, running: true },
  ]);

  const text = await cli(['tenants', 'list', '--data-dir', dataDir]);
  expect(text.code, text.stderr).toBe(0);
  expect(text.stdout).toContain(`left      ${killed}: what an interrupted restore of beta (process ${deadPid}) left, not a store; remove it with ${removeCommand(killed)}`);
  expect(text.stdout).toContain(`restoring ${running}: a restore of gamma under way (process ${process.pid})`);
});
