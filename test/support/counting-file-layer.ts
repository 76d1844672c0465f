/**
 * The node file layer, counting the bytes read through it (readFile and handle reads), to show a
 * file was refused unread, and the largest buffer a read filled, to show a file was not held whole;
 * `bytesReadOf` counts per file, to show a file was read once.
 */
import type { FileHandleLike, FileLayer } from '../../storage/io/file-layer.js';
import { nodeFileLayer } from '../../storage/io/node-file-layer.js';

export function countingFileLayer(): FileLayer & { bytesRead: number; bufferBytesMax: number; bytesReadOf: Map<string, number> } {
  const layer = Object.create(nodeFileLayer) as FileLayer & { bytesRead: number; bufferBytesMax: number; bytesReadOf: Map<string, number> };
  layer.bytesRead = 0;
  layer.bufferBytesMax = 0;
  layer.bytesReadOf = new Map();
  const count = (file: string, n: number) => {
    layer.bytesRead += n;
    layer.bytesReadOf.set(file, (layer.bytesReadOf.get(file) ?? 0) + n);
  };
  layer.readFile = async (file) => {
    const bytes = await nodeFileLayer.readFile(file);
    count(file, bytes.length);
    return bytes;
  };
  layer.open = async (file, flags) => {
    const handle = await nodeFileLayer.open(file, flags);
    return Object.create(handle, {
      read: {
        value: async (buffer: Uint8Array, offset: number, length: number, position: number) => {
          layer.bufferBytesMax = Math.max(layer.bufferBytesMax, buffer.byteLength);
          const n = await handle.read(buffer, offset, length, position);
          count(file, n);
          return n;
        },
      },
    }) as FileHandleLike;
  };
  return layer;
}
