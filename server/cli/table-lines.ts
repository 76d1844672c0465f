/** Rows per table as `store verify` and `store inspect` print them, a retired table marked as one. */

/** What a retired table is (StoreModule.retiredTables), in the reports' words. */
export const retiredTableNote = 'retired: rows kept, no tool reaches them';

/** One line per table, `retired` ones (StoreModule.retiredTables) marked: their rows are counted and hashed, but nothing uses them. */
export function tableLines(tables: Readonly<Record<string, number>>, retired: readonly string[]): string[] {
  return Object.entries(tables).map(([t, n]) => `  ${t.padEnd(24)} ${n}${retired.includes(t) ? `  (${retiredTableNote})` : ''}`);
}
