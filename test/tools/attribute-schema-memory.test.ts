/**
 * Compiling object-type schemas leaves nothing behind that the heap cannot take back: every
 * type_define compiles its schema (refused ones too), every validator-cache miss compiles one,
 * for every tenant of the process. Compiled in one shared Ajv, each compile left its state there
 * (~50 KB for a 24 KB schema), so 2,000 compiles ran a process with an 80 MB heap out of memory;
 * compiled each in an Ajv of its own, they finish. A real child process under a real heap limit.
 */
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';

const child = fileURLToPath(new URL('./fixtures/schema-compiles.ts', import.meta.url));

test('2,000 compiles of distinct 24 KB schemas finish under an 80 MB heap', async () => {
  const r = await runProcess(process.execPath, ['--max-old-space-size=80', '--import', 'tsx', child, '2000'], { env: process.env });
  expect(r.code, r.stderr.slice(-2000)).toBe(0);
  expect(JSON.parse(r.stdout)).toMatchObject({ compiled: 2000 });
}, 180_000);
