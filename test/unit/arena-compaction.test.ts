import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { z } from 'zod';
import { canonicalStateHash } from '../../storage/canonical.js';
import { defineReducer, type StoreModule } from '../../storage/reducer.js';
import { arenaChunksMax, arenaCompactionDeadBytesMin, RowArena, rowStart } from '../../storage/row-arena.js';
import { msgpackValueEnd } from '../../storage/msgpack-extent.js';
import { packr } from '../../storage/row-codec.js';
import type { Row, TableSchema } from '../../storage/schema.js';
import { Store } from '../../storage/store.js';
import { Table } from '../../storage/table.js';

const notes: TableSchema = {
  name: 'notes',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'team', type: 'string' },
    { name: 'round', type: 'int' },
    { name: 'body', type: 'json' },
  ],
  primaryKey: ['id'],
  indexes: [{ name: 'by_team', columns: ['team', 'round'] }],
};

const rowsLive = 2_000;
/** About 200 bytes a row: rounds of rewrites of every row make dead bytes fast. */
const filler = 'x'.repeat(150);

function note(table: Table, i: number, round: number): Row {
  return table.normalise({ id: `n-${String(i).padStart(5, '0')}`, team: `t${i % 7}`, round, body: { text: filler, i, round } });
}

/** Rewrite every row once, as of `round`. */
function rewriteAll(table: Table, model: Map<string, Row>, round: number): void {
  for (let i = 0; i < rowsLive; i++) {
    const row = note(table, i, round);
    const key = table.keyOf(row);
    table.put(key, row);
    model.set(key, row);
  }
}

/** Rewrite every row until a compaction is due; returns the round reached. */
function rewriteUntilDue(table: Table, model: Map<string, Row>, fromRound: number): number {
  let round = fromRound;
  while (!table.arena.compactionDue) rewriteAll(table, model, ++round);
  return round;
}

const hashOf = (table: Table) => canonicalStateHash([{ schema: notes, rows: table.rows, arena: table.arena }]);

function expectLike(table: Table, model: Map<string, Row>): void {
  expect(table.size).toBe(model.size);
  for (const [key, row] of model) expect(table.getByKey(key)).toEqual(row);
  const byTeam = [...table.scan({ index: 'by_team', prefix: ['t3'] })];
  expect(byTeam).toEqual([...model.values()].filter((r) => r.team === 't3').sort((a, b) => (a.round as number) - (b.round as number) || ((a.id as string) < (b.id as string) ? -1 : 1)));
}

describe('arena compaction', () => {
  test('rows a transaction puts are stored as references into the arena, and read back equal', () => {
    const table = new Table(notes);
    const row = note(table, 1, 1);
    table.put(table.keyOf(row), row);
    expect(typeof table.rows.get(table.keyOf(row))).toBe('number');
    expect(table.getByKey(table.keyOf(row))).toEqual(row);
    expect(Object.isFrozen(table.getByKey(table.keyOf(row)))).toBe(true);
  });

  test('rewrites make dead bytes; stepwise compaction frees them without changing a row, an index entry or the hash', () => {
    const table = new Table(notes);
    const model = new Map<string, Row>();
    rewriteUntilDue(table, model, 0);
    const heldBefore = table.arena.bytesHeld;
    expect(table.arena.bytesDead).toBeGreaterThanOrEqual(arenaCompactionDeadBytesMin);
    const hashBefore = hashOf(table);
    const liveBytes = table.arena.bytesHeld - table.arena.bytesDead;
    let steps = 0;
    while (table.compactStep(100)) {
      steps++;
      // Mid-walk too, held minus dead is the live rows' bytes: a moved row's old copy is dead at once.
      expect(table.arena.compacting).toBe(true);
      expect(table.arena.bytesHeld - table.arena.bytesDead).toBe(liveBytes);
    }
    // 2,000 keys in steps of 100: about 20 steps, each a short task.
    expect(steps).toBeGreaterThanOrEqual(19);
    expect(table.arena.compacting).toBe(false);
    expect(table.arena.bytesDead).toBe(0);
    expect(table.arena.bytesHeld).toBeLessThan(heldBefore / 2);
    expect(hashOf(table)).toBe(hashBefore);
    expectLike(table, model);
  });

  test('writes and deletes between the steps of a compaction are kept, and the arena stays bounded over many rounds', () => {
    const table = new Table(notes);
    const model = new Map<string, Row>();
    let round = 0;
    for (let cycle = 0; cycle < 4; cycle++) {
      round = rewriteUntilDue(table, model, round);
      expect(table.compactStep(50)).toBe(true);
      let step = 0;
      do {
        // Between steps: rewrite a row ahead of the walk and one behind it, delete one, add one.
        round++;
        for (const i of [(step * 37) % rowsLive, rowsLive - 1 - ((step * 11) % rowsLive)]) {
          const row = note(table, i, round);
          table.put(table.keyOf(row), row);
          model.set(table.keyOf(row), row);
        }
        const gone = `n-${String((step * 53 + cycle) % rowsLive).padStart(5, '0')}`;
        table.remove(table.keyOf({ id: gone }));
        model.delete(table.keyOf({ id: gone }));
        const added = table.normalise({ id: `extra-${cycle}-${step}`, team: 't3', round, body: { step } });
        table.put(table.keyOf(added), added);
        model.set(table.keyOf(added), added);
        step++;
      } while (table.compactStep(50));
      expectLike(table, model);
      const fresh = new Table(notes);
      for (const row of model.values()) fresh.put(fresh.keyOf(row), row);
      expect(hashOf(table)).toBe(hashOf(fresh));
      // Only what was written during the walk can be dead now; held bytes stay near the live ones.
      expect(table.arena.bytesHeld).toBeLessThan(3 * fresh.arena.bytesHeld + arenaCompactionDeadBytesMin);
    }
  });

  test('released chunks are kept as spares, up to twice the live bytes, and new rows go into them before any fresh memory', () => {
    const table = new Table(notes);
    const model = new Map<string, Row>();
    let round = 0;
    for (let cycle = 0; cycle < 3; cycle++) {
      round = rewriteUntilDue(table, model, round);
      while (table.compactStep(500));
      const arena = table.arena;
      const live = arena.bytesHeld - arena.bytesDead;
      expect(arena.spareBytes).toBeGreaterThan(0);
      expect(arena.spareBytes).toBeLessThanOrEqual(2 * Math.max(live, arenaCompactionDeadBytesMin));
      // Once the chunk being filled is full, the next one is a spare: they shrink as rows are written.
      const sparesBefore = arena.spareBytes;
      for (let rounds = 0; rounds < 50 && arena.spareBytes === sparesBefore && !arena.compactionDue; rounds++) rewriteAll(table, model, ++round);
      expect(arena.spareBytes).toBeLessThan(sparesBefore);
      expectLike(table, model);
    }
    const fresh = new Table(notes);
    for (const row of model.values()) fresh.put(fresh.keyOf(row), row);
    expect(hashOf(table)).toBe(hashOf(fresh));
  });

  test('the row ends the arena keeps are where each row\'s msgpack ends, through rewrites, deletes and compactions', () => {
    const table = new Table(notes);
    const model = new Map<string, Row>();
    const expectEndsRight = () => {
      let checked = 0;
      for (const [, stored] of table.rows.entries()) {
        if (typeof stored !== 'number') continue;
        const chunk = table.arena.chunkOf(stored);
        expect(table.arena.rowEnd(chunk, stored)).toBe(msgpackValueEnd(chunk, rowStart(stored), chunk.length));
        checked++;
      }
      expect(checked).toBe(model.size);
    };
    let round = 0;
    for (let cycle = 0; cycle < 3; cycle++) {
      round = rewriteUntilDue(table, model, round);
      expectEndsRight();
      let step = 0;
      while (table.compactStep(200)) {
        // Small rows between the steps: more rows to a chunk than its first row-start list holds.
        for (let k = 0; k < 40; k++) {
          const small = table.normalise({ id: `s-${cycle}-${step}-${k}`, team: 't1', round, body: k });
          table.put(table.keyOf(small), small);
          model.set(table.keyOf(small), small);
        }
        const gone = `n-${String((step * 53 + cycle) % rowsLive).padStart(5, '0')}`;
        table.remove(table.keyOf({ id: gone }));
        model.delete(table.keyOf({ id: gone }));
        step++;
      }
      expectEndsRight();
      expectLike(table, model);
    }
    expect(table.arena.compactionsEnded).toBeGreaterThanOrEqual(3);
    // A reference inside a row is no row: refused, not read as one.
    const [, some] = table.rows.entries().next().value as [string, number];
    expect(() => table.arena.rowEnd(table.arena.chunkOf(some + 1), some + 1)).toThrow(/no whole row starts/);
  });

  test('a remembered row end is never used for another row after its chunk is released and reused', () => {
    const arena = new RowArena();
    const pairs: TableSchema = { name: 'pairs', columns: [{ name: 'id', type: 'string' }, { name: 'text', type: 'string' }], primaryKey: ['id'] };
    const encode = (i: number, text: string) => packr.pack([String(i).padStart(4, '0'), text]);
    const put = (bytes: Uint8Array) => arena.copyIn(bytes, 0, bytes.length)!;
    const endOf = (ref: number) => arena.rowEnd(arena.chunkOf(ref), ref) - rowStart(ref);
    const shortBytes = encode(0, 'a'.repeat(30)).length;
    const longBytes = encode(0, 'b'.repeat(90)).length;
    // One chunk of short rows; the end of the one at a start long rows reach too is asked for last.
    const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
    const shared = (shortBytes * longBytes) / gcd(shortBytes, longBytes);
    const short = Array.from({ length: shared / shortBytes + 2 }, (_, i) => put(encode(i, 'a'.repeat(30))));
    expect(new Set(short.map((ref) => arena.chunkOf(ref))).size).toBe(1);
    const sharedShort = short.find((ref) => rowStart(ref) === shared)!;
    for (const ref of short) expect(endOf(ref)).toBe(shortBytes);
    expect(endOf(sharedShort)).toBe(shortBytes);
    // Every row dies; a compaction with nothing live releases the chunk, kept as a spare.
    for (const ref of short) arena.noteDead(ref);
    arena.beginCompaction();
    arena.endCompaction();
    expect(arena.spareBytes).toBeGreaterThan(0);
    // Long rows go into the same buffer: one of them starts where the remembered short row did.
    const long = Array.from({ length: shared / longBytes + 2 }, (_, i) => put(encode(i, 'b'.repeat(90))));
    const sharedLong = long.find((ref) => rowStart(ref) === shared)!;
    expect(arena.chunkOf(sharedLong)).toBe(arena.chunkOf(sharedShort));
    expect(endOf(sharedLong)).toBe(longBytes);
    for (const ref of long) expect(endOf(ref)).toBe(longBytes);
    long.forEach((ref, i) => expect(arena.decode(pairs, ref)).toEqual({ id: String(i).padStart(4, '0'), text: 'b'.repeat(90) }));
  });

  test('a pinned clone (a snapshot being written) keeps reading its rows; the old chunks go when the pin does', () => {
    const table = new Table(notes);
    const model = new Map<string, Row>();
    rewriteUntilDue(table, model, 0);
    const clone = table.rows.clone();
    const unpin = table.arena.pin();
    const cloneHash = canonicalStateHash([{ schema: notes, rows: clone, arena: table.arena }]);
    // The live table moves on while the clone is pinned.
    const changed = note(table, 5, 999);
    table.put(table.keyOf(changed), changed);
    model.set(table.keyOf(changed), changed);
    while (table.compactStep(100));
    const heldWhilePinned = table.arena.bytesHeld;
    expect(canonicalStateHash([{ schema: notes, rows: clone, arena: table.arena }])).toBe(cloneHash);
    expectLike(table, model);
    unpin();
    unpin(); // a second call changes nothing
    expect(table.arena.bytesHeld).toBeLessThan(heldWhilePinned / 2);
    expectLike(table, model);
    // The released chunk numbers are reused by later writes, and every row still reads back.
    rewriteUntilDue(table, model, 1_000);
    while (table.compactStep(500));
    expectLike(table, model);
  });
});

describe('arena compaction without a free chunk', () => {
  test('gives up, leaves every row readable and the hash unchanged, and waits for twice the dead bytes before trying again', () => {
    const arena = new RowArena();
    // Tiny adopted buffers take chunk numbers 0..58: the rows get the last five.
    for (let i = 0; i < arenaChunksMax - 5; i++) arena.adopt(Buffer.alloc(1));
    const table = new Table(notes, undefined, arena);
    const big = (i: number, round: number) => table.normalise({ id: `big-${i}`, team: 't', round, body: { text: 'z'.repeat(900_000), i } });
    const model = new Map<string, Row>();
    let round = 0;
    while (!arena.compactionDue) {
      round++;
      for (let i = 0; i < 6; i++) {
        const row = big(i, round);
        table.put(table.keyOf(row), row);
        model.set(table.keyOf(row), row);
      }
    }
    const hash = hashOf(table);
    const dead = arena.bytesDead;
    expect(table.compactStep()).toBe(false); // no chunk number to move a row into
    expect(arena.compacting).toBe(false);
    expect(arena.compactionsEnded).toBe(0);
    expect(arena.bytesDead).toBe(dead);
    expect(arena.compactionDue).toBe(false);
    expect(hashOf(table)).toBe(hash);
    for (const [key, row] of model) expect(table.getByKey(key)).toEqual(row);
  });
});

describe('arena compaction in a store', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  const rewrite = defineReducer({
    name: 'rewrite',
    args: z.object({ from: z.number().int(), count: z.number().int().max(1_000), round: z.number().int() }),
    run(ctx, args) {
      const t = ctx.table('notes');
      for (let i = args.from; i < args.from + args.count; i++) {
        t.upsert({ id: `n-${String(i).padStart(5, '0')}`, team: `t${i % 7}`, round: args.round, body: { text: storeFiller, i, round: args.round } });
      }
    },
  });
  const module: StoreModule = { tables: [notes], reducers: [rewrite] };
  /** About 650 bytes a row: 1.3 MB of rows rewritten per round. */
  const storeFiller = 'y'.repeat(600);
  const rounds = 60;

  test('a store under rewrites compacts on its own between batches; state survives reopen and a snapshot taken meanwhile', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ioboxx-compact-'));
    dirs.push(dir);
    const caller = { tenant: 't', subject: 's' };
    let store = await Store.open({ dir, module });
    const table = () => (store as unknown as { tables: Map<string, Table> }).tables.get('notes')!;
    let peakHeld = 0;
    let snapshot: Promise<unknown> | undefined;
    let snapshotDone = false;
    for (let round = 1; round <= rounds; round++) {
      await Promise.all([0, 500, 1_000, 1_500].map((from) => store.call('rewrite', { from, count: 500, round }, caller)));
      // While the snapshot's clone is pinned no chunk is released (how long depends on the disk): not counted.
      if (snapshot === undefined || snapshotDone) peakHeld = Math.max(peakHeld, table().arena.bytesHeld);
      if (round === 20) snapshot = store.snapshot().finally(() => (snapshotDone = true));
    }
    await snapshot;
    expect(table().arena.compactionsEnded).toBeGreaterThan(0);
    // Without compaction the arena would hold every round's rows (~78 MB); it holds the live
    // rows, the dead bytes that start a compaction and those written during one.
    const live = new Table(notes);
    for (const row of table().scan()) live.put(live.keyOf(row), row);
    expect(peakHeld).toBeLessThan(rounds * live.arena.bytesHeld / 3);
    expect(table().arena.bytesHeld).toBeLessThan(2 * live.arena.bytesHeld + 2 * arenaCompactionDeadBytesMin);
    // What the store reports (the server's ioboxx_row_bytes): the live rows' bytes exactly, even
    // with a compaction still under way (a moved row's old copy counts as dead at once), and the
    // dead and spare ones as the arena counts them.
    const reported = store.rowBytes();
    expect(reported.live).toBe(live.arena.bytesHeld);
    expect(reported.dead).toBe(table().arena.bytesDead);
    expect(reported.spare).toBe(table().arena.spareBytes);
    const hash = store.stateHash();
    await store.close();
    store = await Store.open({ dir, module });
    expect(store.stateHash()).toBe(hash);
    expect(table().getByKey(table().keyOf({ id: 'n-01999' }))?.round).toBe(rounds);
    await store.close();
  });
});
