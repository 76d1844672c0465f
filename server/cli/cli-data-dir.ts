/** The data directory for operator commands: --data-dir, else the configuration (IOBOXX_DATA_DIR). */
import path from 'node:path';
import { loadConfig } from '../config.js';

export const dataDirOptionHelp = 'data directory (overrides IOBOXX_DATA_DIR)';

export function operatorDataDir(dataDirOption: string | undefined): string {
  if (dataDirOption !== undefined) return path.resolve(dataDirOption);
  return loadConfig(process.env).dataDir;
}
