import { describe, expect, test } from 'vitest';
import type { Invocation, TableChanges } from '../../storage/changes.js';
import { encodeFrameParts, frameHeaderBytes, frameTrailerBytes } from '../../storage/log/frame.js';
import { FrameTxRecord } from '../../storage/log/frame-tx-record.js';
import { decodePayload, encodePayloadParts } from '../../storage/log/payload.js';
import type { TableSchema } from '../../storage/schema.js';

const notes: TableSchema = { name: 'notes', columns: [{ name: 'id', type: 'string' }, { name: 'doc', type: 'json' }], primaryKey: ['id'] };
const schemas = new Map([[notes.name, notes]]);
const invocation: Invocation = { reducer: 'note_put', args: { id: 'b', doc: { t: 'é', n: [1, 2.5] } }, caller: { tenant: 't', subject: 's' }, timestampMs: 1_700_000_000_000, idempotencyKey: 'k-1' };
const changes: TableChanges[] = [{ table: 'notes', deletes: [{ id: 'a', doc: null }], inserts: [{ id: 'b', doc: { t: 'é', n: [1, 2.5] } }] }];

function frameAt(offset: number): Buffer {
  return encodeFrameParts(offset, encodePayloadParts(invocation, changes, schemas));
}

describe('a transaction record read from its frame', () => {
  test('gives the invocation and the changes the frame carries, each decoded on its own, and serialises as a plain record', () => {
    const record = new FrameTxRecord(7, frameAt(7), schemas);
    expect(record.offset).toBe(7);
    expect(record.changes).toEqual(changes);
    expect(record.invocation).toEqual(invocation);
    expect(record.changes).toBe(record.changes); // decoded once
    expect(JSON.parse(JSON.stringify(record))).toEqual(JSON.parse(JSON.stringify({ offset: 7, invocation, changes })));
    expect(Object.keys(record)).toEqual(['offset']); // the frame is not a field anyone sees
  });

  test('decodePayload and the record agree, with and without an idempotency key', () => {
    const { idempotencyKey: _, ...keyless } = invocation;
    for (const inv of [invocation, keyless]) {
      const frame = encodeFrameParts(3, encodePayloadParts(inv, changes, schemas));
      const payload = frame.subarray(frameHeaderBytes, frame.length - frameTrailerBytes);
      const record = new FrameTxRecord(3, frame, schemas);
      expect(decodePayload(3, payload, schemas)).toEqual({ offset: 3, invocation: record.invocation, changes: record.changes });
      expect(record.invocation).toEqual(inv);
    }
  });

  test('a damaged frame or one of another offset is refused when read, naming the offset', () => {
    const damaged = frameAt(9);
    damaged[20] = damaged[20]! ^ 0x01;
    expect(() => new FrameTxRecord(9, damaged, schemas).changes).toThrow(/frame of offset 9 does not read back/);
    expect(() => new FrameTxRecord(10, frameAt(9), schemas).invocation).toThrow(/frame of offset 10 reads back as offset 9/);
  });
});
