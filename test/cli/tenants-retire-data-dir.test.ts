/** `tenants forget|delete` on a data directory that does not exist: refused as `tenants list` refuses it, not a success. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { cli } from './cli-process.js';

const parent = mkdtempSync(path.join(tmpdir(), 'ioboxx-retire-datadir-'));
afterAll(() => rmSync(parent, { recursive: true, force: true }));

test.each(['forget', 'delete'])('tenants %s --yes with a mistyped --data-dir fails naming it (exit 1)', async (command) => {
  const missing = path.join(parent, 'no-such-data');
  const r = await cli(['tenants', command, 'local', '--yes', '--json', '--data-dir', missing]);
  expect(r.code).toBe(1);
  expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'not_found', message: `data directory ${missing} does not exist` });
}, 60_000);
