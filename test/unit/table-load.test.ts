import { describe, expect, test } from 'vitest';
import { newStringTree } from '../../storage/btree.js';
import { LoopSlices } from '../../storage/io/event-loop.js';
import { RowArena } from '../../storage/row-arena.js';
import type { Row, TableSchema } from '../../storage/schema.js';
import { Table } from '../../storage/table.js';

const people: TableSchema = {
  name: 'people',
  columns: [
    { name: 'id', type: 'int' },
    { name: 'team', type: 'string', nullable: true },
    { name: 'email', type: 'string' },
  ],
  primaryKey: ['id'],
  indexes: [
    { name: 'by_team', columns: ['team'] },
    { name: 'by_email', columns: ['email'], unique: true },
  ],
};

function rowsOf(table: Table): Map<string, Row> {
  return new Map([...table.rows.keys()].map((key) => [key, table.getByKey(key)!]));
}

describe('table built from loaded rows', () => {
  test('its indexes answer every scan exactly as indexes kept row by row', async () => {
    const byPuts = new Table(people);
    for (let i = 0; i < 2000; i++) {
      const row = byPuts.normalise({ id: (i * 7919) % 2000 - 1000, team: i % 7 === 0 ? null : `team-${i % 5}`, email: `p${i}@example.org` });
      byPuts.put(byPuts.keyOf(row), row);
    }
    const loadedRows = newStringTree<Row>();
    for (const [key, row] of rowsOf(byPuts)) loadedRows.set(key, row);
    const loaded = await Table.load(people, loadedRows, new RowArena(), new LoopSlices());
    for (const options of [
      { index: 'by_team' }, { index: 'by_team', prefix: [null] }, { index: 'by_team', prefix: ['team-3'], reverse: true },
      { index: 'by_email' }, { index: 'by_email', range: { from: ['p1'], to: ['p2'] } },
    ]) {
      expect([...loaded.scan(options)]).toEqual([...byPuts.scan(options)]);
    }
    expect(loaded.getBy('by_email', ['p42@example.org'])).toEqual(byPuts.getBy('by_email', ['p42@example.org']));
    // Still a live index after the bulk build.
    const moved = loaded.normalise({ id: 5, team: 'team-9', email: 'moved@example.org' });
    loaded.put(loaded.keyOf(moved), moved);
    expect([...loaded.scan({ index: 'by_team', prefix: ['team-9'] })].map((r) => r.id)).toEqual([5]);
    expect(loaded.getBy('by_email', ['moved@example.org'])?.id).toBe(5);
  });

  test('rows that hold one value twice in a unique index are refused, not silently dropped', async () => {
    const rows = newStringTree<Row>();
    const table = new Table(people);
    for (const id of [1, 2]) {
      const row = table.normalise({ id, team: 'a', email: 'same@example.org' });
      rows.set(table.keyOf(row), row);
    }
    await expect(Table.load(people, rows, new RowArena(), new LoopSlices())).rejects.toThrow(/unique index by_email holds one value twice/);
  });
});
