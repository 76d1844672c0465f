/**
 * A module of the built tree (dist/), as users run it: `npm run bench` builds first. Benchmarks
 * that time the engine in-process load it from here rather than from its sources under tsx,
 * whose esbuild `keepNames` wraps every function the engine creates per call (measured on the
 * engine at 64 callers: 5-10 % fewer commits/s from sources, and a higher p99).
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../test/e2e/server-process.js';

/** Import `dist/<relative>` (e.g. 'storage/store.js'); typed by the caller as its source module. */
export async function importBuilt<T>(relative: string): Promise<T> {
  const file = path.join(repoRoot, 'dist', relative);
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` (npm run bench does it first)`);
  return (await import(pathToFileURL(file).href)) as T;
}
