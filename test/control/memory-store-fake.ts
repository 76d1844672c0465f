/**
 * A tiny in-memory stand-in for StoreApi with the two tables the control plane reads
 * (`run_outbox`, `access_log`) and the one system reducer it calls (`run_outbox_remove`).
 * Only `read` and `call` are real; the rest is never touched by storage/control.
 */
import type { StoreApi } from '../../storage/store.js';
import type { Page, ReadView, ScanOptions, TableReader } from '../../storage/reducer.js';
import type { Row, TableSchema, Value } from '../../storage/schema.js';

function compareKeys(a: Value, b: Value): number {
  return typeof a === 'number' && typeof b === 'number' ? a - b : String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

class FakeTable implements TableReader {
  readonly rows = new Map<string, Row>();
  constructor(readonly schema: TableSchema) {}
  get size(): number {
    return this.rows.size;
  }
  private keyOf(row: Row): Value {
    return row[this.schema.primaryKey[0]!]!;
  }
  private sorted(): Row[] {
    return [...this.rows.values()].sort((a, b) => compareKeys(this.keyOf(a), this.keyOf(b)));
  }
  get(key: readonly Value[]): Row | undefined {
    return this.rows.get(JSON.stringify(key[0]));
  }
  getBy(): Row | undefined {
    throw new Error('not in the fake');
  }
  *scan(options: ScanOptions = {}): IterableIterator<Row> {
    const from = options.range?.from?.[0];
    let n = 0;
    const rows = this.sorted();
    if (options.reverse) rows.reverse();
    for (const row of rows) {
      if (from !== undefined && compareKeys(this.keyOf(row), from) < 0) continue;
      if (options.afterKey !== undefined && compareKeys(this.keyOf(row), JSON.parse(options.afterKey) as Value) <= 0) continue;
      if (options.limit !== undefined && n++ >= options.limit) return;
      yield row;
    }
  }
  page(options: ScanOptions & { limit: number }): Page {
    const rows = [...this.scan(options)];
    return rows.length === options.limit ? { rows, nextKey: JSON.stringify(this.keyOf(rows[rows.length - 1]!)) } : { rows };
  }
  count(options: ScanOptions & { limit: number }): number {
    return [...this.scan(options)].length;
  }
  put(row: Record<string, unknown>): void {
    this.rows.set(JSON.stringify(this.keyOf(row as Row)), row as Row);
  }
}

export class MemoryStoreFake {
  readonly tables = new Map<string, FakeTable>();
  offset = -1;
  /** Set to make the next `call` throw (a crash between two steps). */
  failNextCall: Error | undefined;
  calls = 0;

  constructor() {
    this.tables.set('run_outbox', new FakeTable({ name: 'run_outbox', columns: [], primaryKey: ['run_id'] }));
    this.tables.set('access_log', new FakeTable({ name: 'access_log', columns: [], primaryKey: ['seq'] }));
  }

  table(name: string): FakeTable {
    const t = this.tables.get(name);
    if (!t) throw new Error(`no table ${name}`);
    return t;
  }

  asStore(): StoreApi {
    const view: ReadView = { offset: this.offset, table: (name) => this.table(name) };
    const store: Partial<StoreApi> = {
      dir: '/fake',
      read: async <T>(fn: (v: ReadView) => T) => fn(view),
      call: async (reducer: string, args: unknown) => {
        if (this.failNextCall) {
          const error = this.failNextCall;
          this.failNextCall = undefined;
          throw error;
        }
        this.calls++;
        if (reducer !== 'run_outbox_remove') throw new Error(`fake has no reducer ${reducer}`);
        const runId = (args as { run_id: string }).run_id;
        this.table('run_outbox').rows.delete(JSON.stringify(runId));
        this.offset++;
        return { offset: this.offset, result: null, replayed: false } as never;
      },
    };
    return store as StoreApi;
  }
}
