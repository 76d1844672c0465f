import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('process warnings reach stderr as JSON log lines, never as Node\'s plain text', async () => {
  const outcome = await runProcess(process.execPath, ['--import', 'tsx', path.join(root, 'test/server/fixtures/emit-warnings.ts')], { cwd: root });
  expect(outcome.code).toBe(0);
  expect(outcome.stdout).toBe('');
  const lines = outcome.stderr.split('\n').filter((line) => line.length > 0);
  // Every line is one JSON object: no "(node:PID) TestWarning: ..." text, no "Use `node --trace-warnings`" hint.
  const entries = lines.map((line) => JSON.parse(line) as { level: number; msg: string; warning: { name: string; message: string; code?: string } });
  expect(entries.map((e) => [e.msg, e.warning.name, e.warning.message, e.warning.code])).toEqual([
    ['process warning', 'TestWarning', 'careful with this', 'IOBOXX_TEST'],
    ['process warning', 'Warning', 'and this too', undefined],
  ]);
  expect(entries.every((e) => e.level === 40)).toBe(true); // pino's warn
});
