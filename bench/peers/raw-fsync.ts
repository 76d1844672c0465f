/**
 * Peer: the disk itself. A 200-byte append followed by fdatasync, in a loop, on the same
 * filesystem as the store (the floor for one durable commit at a time), and 100 appends per
 * fdatasync (what batching buys at best).
 */
import { closeSync, fdatasyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { nowMs, Samples, type LatencySummary } from '../stats.js';

export const appendBytes = 200;
export const appendsPerBatch = 100;

export interface RawFsyncResult {
  readonly appendsPerSec: number;
  /** Latency of one append + fdatasync (single) or one batch (batched). */
  readonly latency: LatencySummary;
}

/** Appends `appendsPerSync` records of 200 bytes then fdatasyncs, for `durationMs`. */
export function measureRawFsync(dir: string, options: { durationMs: number; appendsPerSync: number }): RawFsyncResult {
  const file = path.join(dir, `raw-fsync-${options.appendsPerSync}.log`);
  const fd = openSync(file, 'w');
  const record = Buffer.alloc(appendBytes, 0x61);
  const samples = new Samples();
  let appends = 0;
  const startMs = nowMs();
  const endMs = startMs + options.durationMs;
  try {
    while (nowMs() < endMs) {
      const t0 = nowMs();
      for (let i = 0; i < options.appendsPerSync; i++) writeSync(fd, record);
      fdatasyncSync(fd);
      samples.add(nowMs() - t0);
      appends += options.appendsPerSync;
    }
  } finally {
    closeSync(fd);
    unlinkSync(file);
  }
  return { appendsPerSec: (appends * 1000) / (nowMs() - startMs), latency: samples.summary() };
}
