/**
 * Generations of an audit source. A tenant store numbers its access-log rows from 1 over its
 * whole history; when that history starts again (the store deleted or forgotten and the tenant
 * id used again, an older backup restored), its seqs restart below the staged mark, and staging
 * past the mark would skip every new row up to it. The stager sees the restart (`historyRestart`)
 * and opens the source's next generation: generation 1 is the source's plain name (`access_log`,
 * all that was staged before generations existed), generation n > 1 is `access_log#n`, each with
 * its own mark in audit_sources. The tenant's chain (next_seq, the S3 batches) simply goes on; an
 * `audit_restart` event, staged in the transaction that opens the generation, says where.
 */

/** Between a source's name and its generation number: never in a tenant id or a plain source name. */
export const generationSeparator = '#';
/** Source of the event staged when a source's history restarted and its next generation opened. */
export const auditRestartSource = 'audit_restart';

/** The source name of generation `generation` of `family`. */
export function generationSource(family: string, generation: number): string {
  if (!Number.isSafeInteger(generation) || generation < 1) throw new Error(`bad source generation ${generation}`);
  if (family.includes(generationSeparator)) throw new Error(`bad source family ${JSON.stringify(family)}`);
  return generation === 1 ? family : `${family}${generationSeparator}${generation}`;
}

/** The family and generation a source name stands for (a plain name is generation 1 of itself). */
export function sourceGeneration(source: string): { family: string; generation: number } {
  const at = source.lastIndexOf(generationSeparator);
  if (at < 0) return { family: source, generation: 1 };
  const generation = Number(source.slice(at + 1));
  if (!Number.isSafeInteger(generation) || generation < 2 || source.slice(at + 1) !== String(generation)) {
    throw new Error(`bad generation in source ${JSON.stringify(source)}`);
  }
  return { family: source.slice(0, at), generation };
}

/** A source's current generation and its staged mark. */
export interface AuditSourceMark {
  readonly source: string;
  readonly generation: number;
  /** The highest source seq staged in this generation (0: none; a new generation starts below the store's oldest row). */
  readonly stagedThrough: number;
  /** The digest of the row staged at `stagedThrough` (null: none, or staged before migration 6 recorded digests). */
  readonly lastDigest: string | null;
}

/** What the store holds, as far as the restart rule needs it. */
export interface HeldAtMark {
  /** The store's newest seq (null: no row). */
  readonly newestSeq: number | null;
  /** The digest of the store's row at the mark's seq (undefined: no such row). */
  readonly digestAtMark: string | undefined;
}

export type HistoryRestartCause = 'store_ends_below_mark' | 'row_at_mark_differs';

/**
 * Whether the store's history is no longer the one staged under `mark`. A store holding no row at
 * the mark while its newest is above it only aged that row out (audit_gap covers rows lost so);
 * a store with no row at all has nothing to stage yet, and its restart is seen with its first row.
 * A mark without a digest is judged by the seqs alone.
 */
export function historyRestart(mark: AuditSourceMark, held: HeldAtMark): HistoryRestartCause | undefined {
  if (mark.stagedThrough === 0 || held.newestSeq === null) return undefined;
  if (held.digestAtMark === undefined) return held.newestSeq < mark.stagedThrough ? 'store_ends_below_mark' : undefined;
  if (mark.lastDigest !== null && held.digestAtMark !== mark.lastDigest) return 'row_at_mark_differs';
  return undefined;
}
