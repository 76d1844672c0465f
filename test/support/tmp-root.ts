/**
 * Vitest global setup: every temporary file of a run goes under one directory of its own, removed
 * when the run ends. Tests make their stores, data directories and config files with
 * mkdtemp(os.tmpdir()), and spawned servers inherit TMPDIR, so pointing TMPDIR here before the
 * workers start covers them all; before, each run of the suite left ~180 directories (~240 MB)
 * in /tmp. IOBOXX_KEEP_TEST_TMP=1 keeps the directory, to look at what a failing test left.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(path.join(tmpdir(), 'ioboxx-tests-'));
  // Others may pass through, not list: the tests' own Postgres clusters run as the `postgres`
  // user, which must reach its directory inside (each test's directory stays 0700 unless it opens it).
  chmodSync(root, 0o711);
  process.env.TMPDIR = root;
  return () => {
    if (process.env.IOBOXX_KEEP_TEST_TMP === '1') {
      process.stderr.write(`test files kept in ${root}\n`);
      return;
    }
    rmSync(root, { recursive: true, force: true });
  };
}
