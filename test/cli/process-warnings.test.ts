/**
 * A command that reaches S3 loads the AWS SDK, which on Node < 22 warns that its builds from
 * January 2027 will need Node 22: eight lines Node prints between the command's own. An operator
 * command says a process warning in one line (`warning: ...`), and the error stays readable.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { expect, test } from 'vitest';
import { runProcess } from '../support/run-process.js';
import { cliCommand, unreachableS3Env } from './cli-process.js';

test('restore --from-s3 (S3 unreachable): any process warning is one line, and the error follows it', async () => {
  const work = mkdtempSync(path.join(tmpdir(), 'ioboxx-process-warnings-'));
  const env = unreachableS3Env(); // the SDK loads, the command fails
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  const [node, ...args] = cliCommand(['restore', path.join(work, 'download'), 'acme', '--from-s3', 'latest', '--data-dir', path.join(work, 'data')]);
  const r = await runProcess(node!, args, { env });
  expect(r.code, r.stderr).toBe(1);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines.find((l) => l.startsWith('error: ')), r.stderr).toBeDefined();
  // Every line is the command's own: an error, its indented hint, or one whole warning.
  for (const line of lines) expect(line, r.stderr).toMatch(/^(error: |warning: | {2}\S)/);
});
