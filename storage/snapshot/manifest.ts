/**
 * A snapshot is a directory `snapshots/<offset, 20 digits>/` holding `state.msgpack` (the
 * canonical stream), `state.json` (the same state for people and tools) and `manifest.json`,
 * written last (tmp + fsync + rename + directory fsync): the manifest is the commit point.
 * A directory without a valid manifest is an unfinished snapshot and is ignored.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { historyRecordSchema } from '../history.js';

export const snapshotFormatVersion = 1;
export const manifestFileName = 'manifest.json';
/** A manifest is a few hundred bytes plus one entry per table: thousands of tables fit; a larger file is not one. */
export const manifestBytesMax = 1024 * 1024;
export const binaryFileName = 'state.msgpack';
export const jsonFileName = 'state.json';
const snapshotDirPattern = /^(\d{20})$/;

const fileEntry = z.object({ bytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });

export const manifestSchema = z.object({
  format: z.literal(snapshotFormatVersion),
  offset: z.number().int().nonnegative(),
  createdAtMs: z.number().int(),
  stateHash: z.string().regex(/^[0-9a-f]{64}$/),
  tables: z.record(z.string(), z.number().int().nonnegative()),
  files: z.object({ binary: fileEntry, json: fileEntry }),
  /**
   * The history of the store the snapshot belongs to (history.ts), with its own SHA-256: where the
   * id survives a lost history.json (history-evidence.ts). Absent in snapshots written before it.
   */
  history: historyRecordSchema.optional(),
});

export type SnapshotManifest = z.infer<typeof manifestSchema>;

export function snapshotDirName(offset: number): string {
  return String(offset).padStart(20, '0');
}

export function parseSnapshotDirName(name: string): number | undefined {
  const m = snapshotDirPattern.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function snapshotsDir(storeDir: string): string {
  return path.join(storeDir, 'snapshots');
}
