/**
 * A version 1 denial spool (`<ms>-<uuid>.json`, one JSON object), as earlier versions of the server
 * wrote it at a clean shutdown: nothing writes this format now, but a start still loads it.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { denialSpoolDir } from '../../server/control/denial-spool.js';
import type { ServerAuditEvent } from '../../storage/control/audit-staging.js';

export async function writeWholeDenialSpool(dataDir: string, denials: readonly ServerAuditEvent[]): Promise<string> {
  await mkdir(denialSpoolDir(dataDir), { recursive: true });
  const file = path.join(denialSpoolDir(dataDir), `${Date.now()}-${randomUUID()}.json`);
  await writeFile(file, JSON.stringify({ format: 'ioboxx-denial-spool', version: 1, denials }));
  return file;
}
