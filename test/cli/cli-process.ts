/** The real `ioboxx-memory` command line as a child process (test/support/cli-entry.ts: the build when fresh, else the sources). */
import { cliCommand, repoRoot } from '../support/cli-entry.js';
import { runProcess, type ProcessOutcome } from '../support/run-process.js';

export { cliCommand };
export const root = repoRoot;

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
