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

/** Decimal text of 0..9999, and of 0..9999 padded to four digits: the pieces decimalText joins. */
const decimalChunks = Array.from({ length: 10_000 }, (_, i) => String(i));
const decimalChunksPadded = decimalChunks.map((d) => d.padStart(4, '0'));

/**
 * The decimal text of `n` (a safe non-negative integer) as a fresh string joined from table
 * pieces, not converted from the number. Why: V8 keeps the strings of the last few thousand
 * numbers it converted to decimal in its number-string cache, so every id a harness made with
 * `obj-${n}` stayed reachable there, and each young-generation collection copied them (at 64
 * callers: scavenges of ~1.7 ms instead of ~1.2 ms, the commit p99 ~0.5 ms higher; README, engine).
 * A server's arguments come from JSON.parse, which leaves that cache alone: the harness must not
 * add GC work the engine would not meet in service. The strings are still new on every call.
 */
export function decimalText(n: number): string {
  if (!(Number.isSafeInteger(n) && n >= 0)) throw new Error(`decimalText: ${n} is not a safe non-negative integer`);
  if (n < 10_000) return decimalChunks[n]!;
  return decimalText(Math.floor(n / 10_000)) + decimalChunksPadded[n % 10_000]!;
}

export function benchObject(caller: number, seq: number): BenchObject {
  const digits = decimalText((caller * 7_919 + seq * 104_729) % workloadKeySpace);
  return { id: 'obj-' + digits, type: 'note', attributes: { title: 'object ' + digits, n: seq, tags: ['bench', 'memory'] } };
}

/** The object number `n` of a bulk load (distinct ids). */
export function bulkObject(n: number): BenchObject {
  const digits = decimalText(n);
  return { id: 'bulk-' + digits, type: 'note', attributes: { title: 'object ' + digits, n, tags: ['bench'] } };
}
