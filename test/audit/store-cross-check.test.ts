/**
 * The merge of a store's access log with the trail, on its own: rows that aged out of the store,
 * a staged mark gone backwards, a trail running past a closed store, and the bound on problems.
 */
import { expect, test } from 'vitest';
import { accessLogEvent } from '../../storage/control/audit-staging.js';
import type { Row } from '../../storage/schema.js';
import { StoreTrailCheck, storeCheckProblemsMax, type HeldAccessLog, type StoreCheckEnd } from '../../storage/audit/store-cross-check.js';

const nowMs = 1_000_000_000;
const row = (seq: number): Row => ({ seq, at_ms: nowMs - 3_600_000, subject: 's', action: 'tools/call', target: 't', object_ids: [], offset: seq, outcome: 'ok' });

/** A store whose access log holds seq from..to. */
function held(from: number, to: number): HeldAccessLog {
  const rows = to >= from ? Array.from({ length: to - from + 1 }, (_, i) => row(from + i)) : [];
  return {
    rows: rows.length,
    oldestSeq: rows[0] ? from : null,
    newestSeq: rows[0] ? to : null,
    page: async (fromSeq, limit) => rows.filter((r) => (r.seq as number) >= fromSeq).slice(0, limit),
  };
}

const event = (seq: number) => ({ source: 'access_log', sourceSeq: seq, event: accessLogEvent(row(seq)) });
const closed: Omit<StoreCheckEnd, 'stagedThroughSeqNow'> = { workWaiting: false, live: false, nowMs };

test('rows that aged out of the store are not checked: the check starts at its oldest row and counts the trail events before it', async () => {
  const check = new StoreTrailCheck('t', held(1_001, 1_500), 'access_log', 1_500, null);
  for (let seq = 1; seq <= 1_500; seq++) await check.trailEvent(event(seq), {});
  const { summary, problems } = await check.finish({ ...closed, stagedThroughSeqNow: 1_500 });
  expect(problems).toEqual([]);
  expect(summary).toMatchObject({ rowsHeld: 500, rowsChecked: 500, checkedFromSeq: 1_001, trailEventsAgedOut: 1_000, pendingRows: 0 });
});

test('a staged mark below what the trail already holds is mark_behind', async () => {
  const check = new StoreTrailCheck('t', held(1, 5), 'access_log', 5, null);
  for (let seq = 1; seq <= 5; seq++) await check.trailEvent(event(seq), {});
  const { problems } = await check.finish({ ...closed, stagedThroughSeqNow: 3 });
  expect(problems).toEqual([expect.objectContaining({ kind: 'mark_behind', detail: expect.stringContaining('staged through seq 3, but S3 and staging hold seq 5') })]);
});

test('a trail past the rows of a closed store is store_behind; past a live one it is the writer running ahead', async () => {
  for (const live of [false, true]) {
    const check = new StoreTrailCheck('t', held(1, 3), 'access_log', 5, null);
    for (let seq = 1; seq <= 5; seq++) await check.trailEvent(event(seq), {});
    const { problems } = await check.finish({ ...closed, live, stagedThroughSeqNow: 5 });
    expect(problems.map((p) => p.kind)).toEqual(live ? [] : ['store_behind']);
  }
});

test('a row missing between staged ones is missing_event even above the staged mark, and problems stop at storeCheckProblemsMax', async () => {
  const rows = storeCheckProblemsMax * 2 + 10;
  const check = new StoreTrailCheck('t', held(1, rows), 'access_log', 0, null);
  // Every other row reached the trail: each missing one is its own range.
  for (let seq = 2; seq <= rows; seq += 2) await check.trailEvent(event(seq), {});
  const { summary, problems } = await check.finish({ ...closed, stagedThroughSeqNow: rows });
  expect(summary.rowsChecked).toBe(rows);
  expect(problems).toHaveLength(storeCheckProblemsMax + 1);
  expect(problems[0]).toMatchObject({ kind: 'missing_event', detail: 'access-log seq 1 of the store is in neither S3 nor staging, though later rows are' });
  expect(problems[storeCheckProblemsMax]!.detail).toBe(`and ${rows / 2 - storeCheckProblemsMax} more problems of this store not listed (storeCheckProblemsMax ${storeCheckProblemsMax})`);
});
