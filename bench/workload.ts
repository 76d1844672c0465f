/**
 * The write every durable-commit benchmark performs, ours and the peers' alike: upsert of
 * one small object (id, type, attributes JSON, version). Keys cycle through a fixed space so
 * a run mixes inserts and updates the same way on every system.
 */

/** Distinct object ids the upsert workload touches. */
export const workloadKeySpace = 50_000;

export interface BenchObject {
  readonly id: string;
  readonly type: string;
  readonly attributes: { readonly title: string; readonly n: number; readonly tags: readonly string[] };
}

export function benchObject(caller: number, seq: number): BenchObject {
  const n = (caller * 7_919 + seq * 104_729) % workloadKeySpace;
  return { id: `obj-${n}`, type: 'note', attributes: { title: `object ${n}`, n: seq, tags: ['bench', 'memory'] } };
}

/** The object number `n` of a bulk load (distinct ids). */
export function bulkObject(n: number): BenchObject {
  return { id: `bulk-${n}`, type: 'note', attributes: { title: `object ${n}`, n, tags: ['bench'] } };
}
