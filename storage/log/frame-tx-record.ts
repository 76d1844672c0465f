/**
 * A durable transaction's record (TxRecord) made from its commitlog frame, decoded when first
 * read. The store hands these to commit listeners instead of keeping each transaction's
 * invocation and rows until its acknowledgement (store.ts, Pending.net): a listener that reads
 * nothing costs nothing, and one that reads gets what replay and readTx would give.
 * `invocation` and `changes` are getters: read them, do not spread the record. Read them in the
 * listener: a record kept holds its frame, a slice that keeps a shared 8 KiB pool buffer alive.
 */
import type { Invocation, TableChanges, TxRecord } from '../changes.js';
import type { TableSchema } from '../schema.js';
import { payloadOfFrame } from './frame.js';
import { decodeChanges, decodeInvocation } from './payload.js';

export class FrameTxRecord implements TxRecord {
  readonly #frame: Buffer;
  readonly #schemas: ReadonlyMap<string, TableSchema>;
  #payload: Buffer | undefined;
  #invocation: Invocation | undefined;
  #changes: readonly TableChanges[] | undefined;

  constructor(readonly offset: number, frame: Buffer, schemas: ReadonlyMap<string, TableSchema>) {
    this.#frame = frame;
    this.#schemas = schemas;
  }

  get invocation(): Invocation {
    return (this.#invocation ??= decodeInvocation(this.offset, this.#readPayload()));
  }

  /** Decoded apart from the invocation: change feeds read only these. */
  get changes(): readonly TableChanges[] {
    return (this.#changes ??= decodeChanges(this.offset, this.#readPayload(), this.#schemas));
  }

  toJSON(): TxRecord {
    return { offset: this.offset, invocation: this.invocation, changes: this.changes };
  }

  #readPayload(): Buffer {
    return (this.#payload ??= payloadOfFrame(this.#frame, this.offset));
  }
}
