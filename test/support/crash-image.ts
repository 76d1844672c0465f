/**
 * A store directory as a crash would leave it: no clean-close checkpoint. Tests that cut or
 * damage the log's tail to stand for a torn write start here, since after a clean close (which
 * records its last offset) a shorter log is lost acknowledged work, and the open refuses it.
 */
import { rmSync } from 'node:fs';
import * as path from 'node:path';

export function asAfterCrash(dir: string): void {
  rmSync(path.join(dir, 'log', 'checkpoint.json'), { force: true });
}
