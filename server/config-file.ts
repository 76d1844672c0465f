/**
 * The optional configuration file: a JSON object of the same names as the environment
 * (`{"IOBOXX_HTTP_PORT": 8787, "DATABASE_URL": "..."}`), named by `--config FILE` or
 * IOBOXX_CONFIG_FILE (every command reads it). The environment wins over the file, so one secret can stay in the
 * environment while the rest lives in a file under version control.
 */
import { readSmallFileSync } from '../storage/io/read-whole.js';
import { isJsonObject } from '../storage/json-object.js';
import { ConfigError, loadConfig, settingNames, type Config } from './config.js';

export const configFileBytesMax = 256 * 1024;

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
  if (!isJsonObject(parsed)) throw new ConfigError([`config file ${file}: must be a JSON object`]);
  const problems: string[] = [];
  const fromFile: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    // A misspelt name is refused, not ignored: its setting would silently keep its default.
    if (!settingNames.has(name)) problems.push(`config file ${file}: unknown setting ${name}`);
    else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') fromFile[name] = String(value);
    else problems.push(`config file ${file}: ${name} must be a string, number or boolean`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  // A variable set to nothing (`DATABASE_URL=` from a compose file or a unit's template) is unset
  // everywhere else (config.ts blankToUndefined): it must not wipe the file's value and leave the default.
  const given = Object.fromEntries(Object.entries(env).filter(([name, value]) => !(name in fromFile) || (value ?? '').trim() !== ''));
  return { ...fromFile, ...given };
}

/**
 * The configuration a command runs with: the environment over the configuration file (`--config`,
 * else IOBOXX_CONFIG_FILE), and `--data-dir` over both. Operator commands read the file as `serve`
 * does, so S3 or a data directory set in it is the one they act on too.
 */
export function configWithFile(options: { readonly configFile?: string | undefined; readonly dataDir?: string | undefined }): Config {
  const withFile = environmentWithFile(process.env, options.configFile ?? process.env.IOBOXX_CONFIG_FILE);
  return loadConfig(options.dataDir === undefined ? withFile : { ...withFile, IOBOXX_DATA_DIR: options.dataDir });
}
