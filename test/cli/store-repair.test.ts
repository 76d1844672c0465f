/**
 * `store repair DIR` through the real CLI: its text report says where the damage was, what was
 * dropped (offsets only when something was) and what moved aside; afterwards the store verifies.
 * A store that refuses to open names `store repair` on its directory as the operator gave it:
 * pasted into a shell as printed, it repairs that store.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { segmentFileName } from '../../storage/log/segment.js';
import { runPasted } from '../support/pasted-command.js';
import { cli, cliCommand, cliEnv } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-store-repair-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const segmentsOf = (dir: string) => readdirSync(path.join(dir, 'log')).filter((f) => f.endsWith('.log')).sort();

async function verified(dir: string): Promise<{ lastOffset: number; stateHash: string }> {
  const r = await cli(['store', 'verify', dir, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { lastOffset: number; stateHash: string };
}

describe.concurrent('store repair', () => {
  test('a FIFO named like the next segment: moved aside whole, "dropped no transaction", the store verifies with its state', async () => {
    const dir = path.join(work, 'fifo');
    await writeMemoryStore(dir, 50, 64 * 1024);
    const before = await verified(dir);
    const fifo = path.join(dir, 'log', segmentFileName(before.lastOffset + 1));
    execFileSync('mkfifo', [fifo]);
    const r = await cli(['store', 'repair', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`damage in ${fifo} at byte 0: a FIFO stands where this segment file should be\ndropped no transaction\nmoved aside: ${fifo} from byte 0\n`);
    // Where it went is said, so the operator finds it without searching the store.
    const keptIn = /kept in (\S+) \(nothing deleted\)/.exec(r.stdout)?.[1];
    expect(keptIn, r.stdout).toMatch(new RegExp(`^${path.join(dir, 'log', 'repair-')}\\d+$`));
    expect(readdirSync(keptIn!)).toContain(`${path.basename(fifo)}.from-0`);
    expect(await verified(dir)).toEqual(before);
  });

  test('a flipped byte in a sealed segment: the report names the offsets dropped', async () => {
    const dir = path.join(work, 'flipped');
    await writeMemoryStore(dir, 400, 16 * 1024);
    const before = await verified(dir);
    const segments = segmentsOf(dir);
    expect(segments.length).toBeGreaterThan(3);
    const victim = path.join(dir, 'log', segments[1]!);
    const bytes = readFileSync(victim);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    writeFileSync(victim, bytes);
    const r = await cli(['store', 'repair', dir]);
    expect(r.code, r.stderr).toBe(0);
    const dropped = /dropped (\d+) transactions \(offsets (\d+)\.\.(\d+)\)/.exec(r.stdout);
    expect(dropped, r.stdout).not.toBeNull();
    const [, count, from, through] = dropped!.map(Number);
    expect(through).toBe(before.lastOffset);
    expect(count).toBe(through! - from! + 1);
    expect((await verified(dir)).lastOffset).toBe(from! - 1);
  });
});

describe('the hint of a store with a flipped byte in a sealed segment', () => {
  test('verify and inspect name `store repair` on the directory as given, quoted for the shell; pasted, it repairs the store and verify passes', async () => {
    // A name the shell would split and unquote: pasted as printed, the command must still reach this store.
    const name = "it's a store";
    const dir = path.join(work, name);
    await writeMemoryStore(dir, 400, 16 * 1024);
    const victim = path.join(name, 'log', segmentsOf(dir)[1]!);
    const bytes = readFileSync(path.join(work, victim));
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    writeFileSync(path.join(work, victim), bytes);
    const given = `./${name}`; // relative to `work`, where the operator stands
    const command = `ioboxx-memory store repair './it'\\''s a store'`;

    const verify = await cli(['store', 'verify', given], work);
    expect(verify.code, verify.stderr).toBe(3);
    expect(verify.stderr).toMatch(new RegExp(`^error: damaged store: ${victim.replace(/[.]/g, '\\.')} at byte \\d+: `));
    expect(verify.stderr).toContain(`run \`${command}\` while no process has the store open`);
    const json = await cli(['store', 'verify', given, '--json'], work);
    expect(JSON.parse(json.stdout)).toMatchObject({ code: 'damaged_store', file: victim, hint: expect.stringContaining(`\`${command}\``) });
    const inspect = await cli(['store', 'inspect', given], work);
    expect(inspect.code, inspect.stderr).toBe(3);
    expect(inspect.stdout).toContain(`open: PROBLEM: the store refuses to open: ${victim} at byte `);
    expect(inspect.stdout).toContain(`\n  run \`${command}\``);

    const repaired = await runPasted(command, cliCommand([]), { cwd: work, env: cliEnv() });
    expect(repaired.code, repaired.stderr).toBe(0);
    expect(repaired.stdout).toContain(`damage in ${victim} at byte `);
    expect(repaired.stdout).toMatch(/dropped \d+ transactions/);
    const after = await cli(['store', 'verify', given], work);
    expect(after.code, after.stderr).toBe(0);
  });
});
