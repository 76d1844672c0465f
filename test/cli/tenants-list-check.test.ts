/**
 * `tenants list --check` reads every segment and the kept snapshots, not only the last segment
 * the status reads: a store with a damaged sealed segment is reported damaged (file and byte)
 * and the run exits 3, as does a known tenant whose store vanished. The real CLI, on stores
 * written through the engine.
 */
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { TenantRow } from '../../server/cli/tenant-commands.js';
import { cli } from './cli-process.js';
import { writeMemoryStore } from './memory-store.js';

const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-tenants-check-'));
const dataDir = path.join(work, 'data');
const healthyData = path.join(work, 'healthy-data');
const storeOf = (data: string, tenant: string) => path.join(data, 'tenants', tenant);
let damagedSegment = '';
const damagedByte = 200;

async function list(data: string, ...flags: string[]): Promise<{ code: number | null; rows: TenantRow[]; stdout: string }> {
  const r = await cli(['tenants', 'list', '--data-dir', data, ...flags]);
  return { code: r.code, rows: flags.includes('--json') ? (JSON.parse(r.stdout) as { tenants: TenantRow[] }).tenants : [], stdout: r.stdout };
}

beforeAll(async () => {
  await writeMemoryStore(storeOf(dataDir, 'good'), 1500, 64 * 1024);
  cpSync(storeOf(dataDir, 'good'), storeOf(dataDir, 'bad'), { recursive: true });
  cpSync(storeOf(dataDir, 'good'), storeOf(healthyData, 'good'), { recursive: true });
  // A flipped byte inside a frame of a sealed segment: the last segment, which the status reads, is intact.
  const segments = readdirSync(path.join(storeOf(dataDir, 'bad'), 'log')).filter((f) => f.endsWith('.log')).sort();
  expect(segments.length).toBeGreaterThan(2);
  damagedSegment = path.join(storeOf(dataDir, 'bad'), 'log', segments[1]!);
  const bytes = readFileSync(damagedSegment);
  bytes[damagedByte] = bytes[damagedByte]! ^ 0xff;
  writeFileSync(damagedSegment, bytes);
  // A tenant a server had recorded whose directory is gone.
  mkdirSync(path.join(dataDir, 'known-tenants'), { recursive: true });
  writeFileSync(path.join(dataDir, 'known-tenants', 'gone'), '');
}, 120_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('tenants list --check', () => {
  test('a damaged sealed segment is reported with its file and byte, a vanished store as vanished, and the run exits 3', async () => {
    const { code, rows } = await list(dataDir, '--check', '--json');
    expect(code).toBe(3);
    const byTenant = Object.fromEntries(rows.map((r) => [r.tenant, r]));
    expect(byTenant.good).toMatchObject({ check: { ok: true } });
    const bad = byTenant.bad as unknown as { check: { ok: false; damage: { file: string; position: number }[] } };
    expect(bad.check.ok).toBe(false);
    expect(bad.check.damage[0]).toMatchObject({ file: damagedSegment });
    expect(bad.check.damage[0]!.position).toBeLessThanOrEqual(damagedByte);
    expect(byTenant.gone).toEqual({ tenant: 'gone', vanished: 'directory missing' });

    const text = await list(dataDir, '--check');
    expect(text.code).toBe(3);
    expect(text.stdout).toMatch(new RegExp(`bad .*DAMAGED: ${damagedSegment.replaceAll('/', '\\/')} at byte \\d+`));
    expect(text.stdout).toMatch(/good .* ok/);
    expect(text.stdout).toContain('VANISHED (directory missing)');
  }, 60_000);

  test('without --check only the last segment is read: the damaged store lists, and the run exits 0', async () => {
    const { code, rows } = await list(dataDir, '--json');
    expect(code).toBe(0);
    expect(rows.find((r) => r.tenant === 'bad')).not.toHaveProperty('check');
    expect(rows.find((r) => r.tenant === 'gone')).toEqual({ tenant: 'gone', vanished: 'directory missing' });
  }, 60_000);

  test('healthy stores only: every one ok, exit 0', async () => {
    const { code, rows } = await list(healthyData, '--check', '--json');
    expect(code).toBe(0);
    expect(rows).toEqual([expect.objectContaining({ tenant: 'good', check: { ok: true } })]);
  }, 60_000);
});
