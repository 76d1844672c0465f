/**
 * How the tests start the real `ioboxx-memory` command line: as the build when it is at least as
 * new as every source file it is built from (`node bin/ioboxx-memory.js`, as a user runs it), else
 * from the sources through tsx.
 *
 * Why: a start through tsx took ~0.8 s more CPU (its loader resolves and compiles on a hooks
 * thread), and the suite starts the command line a few hundred times on a 2-core machine whose
 * cores it already keeps busy. The README's test command builds first; a run of one test file
 * after an edit without a build still runs the edited sources.
 */
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const sourceMain = path.join(repoRoot, 'server', 'cli', 'main.ts');
const builtBin = path.join(repoRoot, 'bin', 'ioboxx-memory.js');
const builtMain = path.join(repoRoot, 'dist', 'server', 'cli', 'main.js');
/** The folders tsconfig.build.json builds, and the files that shape the build. */
const sourceDirs = ['storage', 'tools', 'resources', 'server'];
const buildInputs = ['tsconfig.json', 'tsconfig.build.json', 'package.json'];
// By file URL, so the command line also starts in a working directory outside the repository.
const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** Newest modification time (ms) of the .ts files under `dir`. */
function newestSourceMs(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const at = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(at));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(at).mtimeMs);
  }
  return newest;
}

/** True when dist holds a build of the sources as they are now. */
function buildIsFresh(): boolean {
  let builtMs: number;
  try {
    builtMs = statSync(builtMain).mtimeMs;
  } catch {
    return false; // not built
  }
  let newest = 0;
  for (const dir of sourceDirs) newest = Math.max(newest, newestSourceMs(path.join(repoRoot, dir)));
  for (const file of buildInputs) newest = Math.max(newest, statSync(path.join(repoRoot, file)).mtimeMs);
  return builtMs >= newest;
}

/** Node's arguments before the command line's own: the built shim, or tsx and the source entry. */
export const cliNodeArgs: readonly string[] = buildIsFresh() ? [builtBin] : ['--import', tsx, sourceMain];

/** `node ... ioboxx-memory ...args` as one argument vector (the first is the node binary). */
export function cliCommand(args: readonly string[]): string[] {
  return [process.execPath, ...cliNodeArgs, ...args];
}
