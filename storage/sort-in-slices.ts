/**
 * Sorting many keys without holding the event loop in one piece (an open's index build sorts one
 * entry per row: 1M rows took ~1 s in a single Array.prototype.sort). Runs of sortRunItems entries
 * are sorted whole, then merged bottom-up, pass after pass; the loop gets a turn whenever the
 * slices say so (io/event-loop.ts).
 */
import type { LoopSlices } from './io/event-loop.js';

/** Entries a run holds: one run's sort is one short piece of work (a few ms). */
export const sortRunItems = 8192;

/** `keys` ascending, `values` moved with them; the arrays given may be reused for the result. */
export async function sortInSlices<V>(keys: string[], values: V[], slices: LoopSlices): Promise<{ keys: string[]; values: V[] }> {
  if (keys.length !== values.length) throw new Error(`sortInSlices: ${keys.length} keys, ${values.length} values`);
  const n = keys.length;
  const byKey = (a: number, b: number): number => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0);
  const order: number[] = [];
  const runKeys: string[] = [];
  const runValues: V[] = [];
  for (let start = 0; start < n; start += sortRunItems) {
    const end = Math.min(n, start + sortRunItems);
    order.length = runKeys.length = runValues.length = 0;
    for (let i = start; i < end; i++) order.push(i);
    order.sort(byKey);
    for (const i of order) {
      runKeys.push(keys[i]!);
      runValues.push(values[i]!);
    }
    for (let i = start; i < end; i++) {
      keys[i] = runKeys[i - start]!;
      values[i] = runValues[i - start]!;
    }
    if (slices.due(0)) await slices.turn();
  }
  // Each run is in order now; if each one ends below the next one's start, so is the whole: an
  // index whose entries already come in primary-key order (one type, time-ordered ids) needs no merge.
  let runsInOrder = true;
  for (let end = sortRunItems; runsInOrder && end < n; end += sortRunItems) runsInOrder = keys[end - 1]! <= keys[end]!;
  if (runsInOrder) return { keys, values };
  let fromKeys = keys;
  let fromValues = values;
  let toKeys = new Array<string>(n);
  let toValues = new Array<V>(n);
  let merged = 0;
  for (let width = sortRunItems; width < n; width *= 2) {
    for (let low = 0; low < n; low += 2 * width) {
      const middle = Math.min(low + width, n);
      const high = Math.min(low + 2 * width, n);
      let i = low;
      let j = middle;
      for (let k = low; k < high; k++) {
        if (j >= high || (i < middle && fromKeys[i]! <= fromKeys[j]!)) {
          toKeys[k] = fromKeys[i]!;
          toValues[k] = fromValues[i]!;
          i++;
        } else {
          toKeys[k] = fromKeys[j]!;
          toValues[k] = fromValues[j]!;
          j++;
        }
        if (slices.due(++merged)) await slices.turn();
      }
    }
    [fromKeys, toKeys] = [toKeys, fromKeys];
    [fromValues, toValues] = [toValues, fromValues];
  }
  return { keys: fromKeys, values: fromValues };
}
