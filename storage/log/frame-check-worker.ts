/**
 * Worker thread of the segment checker (segment-checker.ts): scans segments that the main
 * thread read into shared memory (frame bounds, CRC32C, contiguous offsets: scanSegmentBytes)
 * and posts the positions of good frames in batches as it goes, then the verdict. It reads and
 * writes no file: the main thread reads through the engine's file layer and decides every rule.
 */
import { parentPort } from 'node:worker_threads';
import { scanSegmentBytes } from './recovery.js';
import type { CheckRequest, CheckMessage } from './segment-checker.js';

const port = parentPort;
if (!port) throw new Error('frame-check-worker runs as a worker thread');

port.on('message', (request: CheckRequest) => {
  const buf = Buffer.from(request.memory, request.byteOffset, request.length);
  const scanned = scanSegmentBytes(buf, request.file, request.firstOffset, (positions, from) => {
    const batch = positions.slice(from);
    port.postMessage({ kind: 'frames', positions: batch } satisfies CheckMessage, [batch.buffer]);
  }, request.batchFrames);
  const { info, problem, headerBad, zeroTail } = scanned;
  port.postMessage({
    kind: 'done',
    end: info.end,
    frames: info.positions.length,
    ...(problem ? { problem } : {}),
    ...(headerBad ? { headerBad } : {}),
    ...(zeroTail ? { zeroTail } : {}),
  } satisfies CheckMessage);
});
port.postMessage({ kind: 'ready' } satisfies CheckMessage);
