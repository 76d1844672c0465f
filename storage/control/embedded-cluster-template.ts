/**
 * A freshly initialised PGlite cluster, kept as a gzip tarball so that a new data dir's embedded
 * database starts from it instead of running initdb in WASM: measured here, a first start took
 * ~9 s of CPU (11-20 s wall) fresh and ~1.8 s from the template. `npm run build` writes it next
 * to the compiled code; without it (or when it does not load) PGlite initialises as before.
 * It is an empty cluster: the control plane's migrations still run on it like on any other.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';

/** A template larger than this is not one we wrote (ours is ~4.5 MB): it is ignored. */
export const clusterTemplateBytesMax = 64 * 1024 * 1024;
/** Unpacked, ours is ~40 MB; a template unpacking to more than this is refused. */
export const clusterTarBytesMax = 512 * 1024 * 1024;

/** The installed PGlite's version: a template only serves the version that wrote it. */
async function pgliteVersion(): Promise<string> {
  let dir = path.dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
  for (let depth = 0; depth < 4; depth++, dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const manifest = JSON.parse(await readFile(file, 'utf8')) as { name?: string; version?: string };
    if (manifest.name === '@electric-sql/pglite' && typeof manifest.version === 'string') return manifest.version;
  }
  throw new Error('cannot find the version of @electric-sql/pglite');
}

function templateName(version: string): string {
  return `pglite-cluster-${version}.tgz`;
}

/** Where the build puts it: dist/ beside the compiled modules (run from sources: the repo's dist/). */
function templateDirs(): string[] {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  return [root, path.join(root, 'dist')];
}

/** The build's template file for the installed PGlite, or undefined when there is none. */
export async function clusterTemplateFile(): Promise<string | undefined> {
  const name = templateName(await pgliteVersion());
  return templateDirs().map((dir) => path.join(dir, name)).find((file) => existsSync(file));
}

/** A template's bytes (the build's unless `file` is given), or undefined when there is none fit to use. */
export async function readClusterTemplate(file?: string): Promise<Buffer | undefined> {
  const chosen = file ?? await clusterTemplateFile();
  if (chosen === undefined || !existsSync(chosen)) return undefined;
  const bytes = await readFile(chosen);
  return bytes.length > 0 && bytes.length <= clusterTemplateBytesMax ? bytes : undefined;
}

/** Initialise a cluster in a scratch dir and write its tarball into `outDir` (atomically); returns the file. */
export async function writeClusterTemplate(outDir: string): Promise<string> {
  const scratch = await mkdtemp(path.join(tmpdir(), 'ioboxx-pglite-template-'));
  try {
    const db = await PGlite.create({ dataDir: path.join(scratch, 'cluster') });
    let bytes: Buffer;
    try {
      await db.query('select 1');
      bytes = Buffer.from(await (await db.dumpDataDir('gzip')).arrayBuffer());
    } finally {
      await db.close();
    }
    if (bytes.length === 0 || bytes.length > clusterTemplateBytesMax) throw new Error(`cluster template of ${bytes.length} bytes`);
    const file = path.join(outDir, templateName(await pgliteVersion()));
    await writeFile(`${file}.tmp`, bytes);
    await rename(`${file}.tmp`, file);
    return file;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
