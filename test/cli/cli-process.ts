/** The real `ioboxx-memory` command line as a child process (the source through tsx, so no build is needed). */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runProcess, type ProcessOutcome } from '../support/run-process.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const main = path.join(root, 'server', 'cli', 'main.ts');
// By file URL, so the CLI also starts in a working directory outside the repository.
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** `node --import tsx main.ts ...args` as one argument vector (the first is the node binary). */
export function cliCommand(args: readonly string[]): string[] {
  return [process.execPath, '--import', tsx, main, ...args];
}

export function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, IOBOXX_LOG_LEVEL: 'silent' };
  delete env.IOBOXX_OIDC_ISSUER;
  return env;
}

export function cli(args: readonly string[], cwd = root): Promise<ProcessOutcome> {
  const [command, ...rest] = cliCommand(args);
  return runProcess(command!, rest, { cwd, env: cliEnv() });
}

/** cliEnv() with S3 configured at an endpoint nothing listens on (port 9): the SDK loads, every request fails to connect. */
export function unreachableS3Env(): NodeJS.ProcessEnv {
  return { ...cliEnv(), S3_ENDPOINT: 'http://127.0.0.1:9', S3_REGION: 'r', S3_BUCKET: 'b', AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' };
}
