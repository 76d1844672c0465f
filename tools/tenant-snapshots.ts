/**
 * When a tenant's store takes a snapshot on its own: before a clean close, when at least
 * `closeSnapshotTxMin` transactions were committed since the newest snapshot. The tenant
 * registry closes idle and evicted stores, and the next open of the tenant then loads that
 * snapshot instead of replaying its log frame by frame and hashing the whole state again
 * (10k objects: about 1.7x less CPU to open). The threshold keeps small, rarely written tenants
 * from writing a snapshot at every close. While open, a busy tenant also snapshots every
 * `snapshotEveryTxDefault` transactions and a changed one every `snapshotEveryMsDefault`
 * (IOBOXX_SNAPSHOT_EVERY_TX / _MS): that bounds its log (segments below the older of the two
 * snapshots kept are deleted) and the replay after a crash.
 *
 * On a nearly full disk the closing snapshot is skipped (said through onError as
 * SnapshotNotTaken 'free_space_low'): a snapshot that runs the disk out fails half-way and
 * takes the space the log's next writes need. Nothing is lost: the log holds every transaction.
 */
import { asSnapshotNotTaken, SnapshotNotTaken } from '../storage/errors.js';
import type { FileLayer } from '../storage/io/file-layer.js';
import { freeBytesShort, statfsFreeBytes, type FreeBytesOf } from '../storage/io/free-bytes.js';
import { listSnapshots } from '../storage/snapshot/reader.js';
import type { Store } from '../storage/store.js';

export const closeSnapshotTxMin = 1_000;
/** A serving store snapshots after this many transactions since its last snapshot. */
export const snapshotEveryTxDefault = 1_000_000;
/** ...and after this long, when anything changed since. */
export const snapshotEveryMsDefault = 60 * 60_000;
/**
 * A snapshot's files per byte of live rows in the arenas: the msgpack file about the rows' own
 * encoding, the JSON beside it three times that for small objects (each row names its columns)
 * and five to six times for embeddings (a float32's 4 bytes are 20 to 25 characters of JSON).
 * Measured in all: 4.0 (objects), 5.9 (objects with 384-dimension embeddings).
 */
export const snapshotBytesPerLiveRowByte = 7;
/** The closing snapshot is taken only with this many times its estimated size free: room for it and for the log's writes after it. */
export const closeSnapshotFreeFactor = 2;

export type CloseSnapshotOutcome = 'taken' | 'not_due' | 'store_failed' | 'free_space_low' | 'write_failed';

/** Offset of the newest complete snapshot in the store's directory, -1 when there is none. */
async function newestSnapshotOffset(store: Store, fl: FileLayer): Promise<number> {
  const refs = await listSnapshots(store.dir, fl); // newest first
  return refs.find((ref) => ref.manifest !== undefined)?.offset ?? -1;
}

/** Why there is not room for a snapshot of `liveRowBytes` in `dir` now, or undefined when there is (or statfs cannot tell: then it is tried). */
async function freeSpaceShortfall(dir: string, liveRowBytes: number, freeBytesOf: FreeBytesOf): Promise<string | undefined> {
  const estimatedBytes = liveRowBytes * snapshotBytesPerLiveRowByte;
  const freeBytes = await freeBytesShort(dir, closeSnapshotFreeFactor * estimatedBytes, freeBytesOf);
  if (freeBytes === undefined) return undefined;
  return `${freeBytes} bytes free, below ${closeSnapshotFreeFactor} x the ~${estimatedBytes} bytes it would take (closeSnapshotFreeFactor)`;
}

/**
 * Takes the closing snapshot when the log since the newest one is long enough and the disk has
 * room for it. Never throws: a snapshot skipped or failed (disk full) costs the next open a
 * longer replay, not the close; onError hears why (SnapshotNotTaken).
 */
export async function snapshotBeforeClose(store: Store, fl: FileLayer, onError: (error: unknown) => void, freeBytesOf: FreeBytesOf = statfsFreeBytes): Promise<CloseSnapshotOutcome> {
  if (store.failed) return 'store_failed';
  try {
    if (store.lastOffset - (await newestSnapshotOffset(store, fl)) < closeSnapshotTxMin) return 'not_due';
    const shortfall = await freeSpaceShortfall(store.dir, store.rowBytes().live, freeBytesOf);
    if (shortfall !== undefined) {
      onError(new SnapshotNotTaken('free_space_low', `closing snapshot skipped: ${shortfall}`));
      return 'free_space_low';
    }
    await store.snapshot();
    return 'taken';
  } catch (error) {
    onError(asSnapshotNotTaken(error));
    return 'write_failed';
  }
}
