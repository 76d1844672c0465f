/**
 * A durable transaction's record (TxRecord) made from its commitlog frame, decoded when first
 * read. The store hands these to commit listeners instead of keeping each transaction's
 * invocation and rows until its acknowledgement (store.ts, Pending.net): a listener that reads
 * nothing costs nothing, and one that reads gets what replay and readTx would give.
 * `invocation` and `changes` are getters: read them, do not spread the record.
 */
import type { Invocation, TableChanges, TxRecord } from '../changes.js';
import type { TableSchema } from '../schema.js';
import { payloadOfFrame } from './frame.js';
import { decodePayload } from './payload.js';

export class FrameTxRecord implements TxRecord {
  readonly #frame: Buffer;
  readonly #schemas: ReadonlyMap<string, TableSchema>;
  #decoded: TxRecord | undefined;

  constructor(readonly offset: number, frame: Buffer, schemas: ReadonlyMap<string, TableSchema>) {
    this.#frame = frame;
    this.#schemas = schemas;
  }

  get invocation(): Invocation {
    return this.#record().invocation;
  }

  get changes(): readonly TableChanges[] {
    return this.#record().changes;
  }

  toJSON(): TxRecord {
    return this.#record();
  }

  #record(): TxRecord {
    return (this.#decoded ??= decodePayload(this.offset, payloadOfFrame(this.#frame, this.offset), this.#schemas));
  }
}
