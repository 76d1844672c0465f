/** The data directory for operator commands: --data-dir, else the configuration (IOBOXX_DATA_DIR, in the environment or IOBOXX_CONFIG_FILE). */
import path from 'node:path';
import { shellWord } from '../../storage/shell-word.js';
import { configWithFile } from '../config-file.js';

export const dataDirOptionHelp = 'data directory (overrides IOBOXX_DATA_DIR)';

/**
 * ` --data-dir DIR`, quoted for a POSIX shell where it must be, for a command a hint names: run
 * as printed it acts on the data directory this run used, not on whatever ./data or
 * IOBOXX_DATA_DIR is where the operator pastes it.
 */
export function dataDirArgument(dataDir: string): string {
  return ` --data-dir ${shellWord(dataDir)}`;
}

export function operatorDataDir(dataDirOption: string | undefined): string {
  if (dataDirOption !== undefined) return path.resolve(dataDirOption);
  return configWithFile({}).dataDir;
}
