/**
 * The optional configuration file: a JSON object of the same names as the environment
 * (`{"IOBOXX_HTTP_PORT": 8787, "DATABASE_URL": "..."}`), named by `--config FILE` or
 * IOBOXX_CONFIG_FILE. The environment wins over the file, so one secret can stay in the
 * environment while the rest lives in a file under version control.
 */
import { readSmallFileSync } from '../storage/io/read-whole.js';
import { ConfigError } from './config.js';

export const configFileBytesMax = 256 * 1024;
const namePattern = /^(IOBOXX_[A-Z0-9_]+|DATABASE_URL|DATABASE_DIRECT_URL|S3_[A-Z_]+|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)$/;

/** The environment with the file's values underneath it; every problem of the file reported together. */
export function environmentWithFile(env: NodeJS.ProcessEnv, file: string | undefined): NodeJS.ProcessEnv {
  if (file === undefined || file === '') return env;
  let text: string;
  try {
    // The limit holds before reading: a FIFO or /dev/zero named by mistake must not hang the start or fill memory.
    text = readSmallFileSync(file, configFileBytesMax, 'configFileBytesMax').toString('utf8');
  } catch (error) {
    // An errno by its code (ENOENT, EACCES); a size or a kind refused says itself.
    throw new ConfigError([`config file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError([`config file ${file}: not JSON (${(error as Error).message})`]);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError([`config file ${file}: must be a JSON object`]);
  const problems: string[] = [];
  const fromFile: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (!namePattern.test(name)) problems.push(`config file ${file}: unknown setting ${name}`);
    else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') fromFile[name] = String(value);
    else problems.push(`config file ${file}: ${name} must be a string, number or boolean`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { ...fromFile, ...env };
}
