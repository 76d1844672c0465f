/**
 * A small store module for engine tests: objects keyed by id with a type index, and
 * reducers that put, delete, bump counters and fail on purpose.
 */
import { z } from 'zod';
import { MemoryError } from '../../storage/errors.js';
import { defineReducer, type StoreModule } from '../../storage/reducer.js';
import type { TableSchema } from '../../storage/schema.js';

export const objectsTable: TableSchema = {
  name: 'objects',
  columns: [
    { name: 'id', type: 'string' },
    { name: 'type', type: 'string' },
    { name: 'n', type: 'int' },
    { name: 'attributes', type: 'json' },
  ],
  primaryKey: ['id'],
  indexes: [{ name: 'by_type', columns: ['type'] }],
};

export const counterModule: StoreModule = {
  tables: [objectsTable],
  reducers: [
    defineReducer({
      name: 'put',
      args: z.object({ id: z.string(), type: z.string(), n: z.number().int(), attributes: z.record(z.string(), z.unknown()).default({}) }),
      run(ctx, args) {
        ctx.table('objects').upsert(args);
        return { id: args.id };
      },
    }),
    defineReducer({
      name: 'del',
      args: z.object({ id: z.string() }),
      run(ctx, args) {
        const old = ctx.table('objects').delete([args.id]);
        if (!old) throw new MemoryError('not_found', `no object ${args.id}`);
        return { deleted: args.id };
      },
    }),
    defineReducer({
      name: 'bump',
      args: z.object({ id: z.string(), by: z.number().int() }),
      run(ctx, args) {
        const t = ctx.table('objects');
        const row = t.get([args.id]);
        const n = ((row?.n as number | undefined) ?? 0) + args.by;
        t.upsert({ id: args.id, type: (row?.type as string | undefined) ?? 'counter', n, attributes: row?.attributes ?? {} });
        return { n };
      },
    }),
    defineReducer({
      name: 'put_then_fail',
      args: z.object({ id: z.string() }),
      run(ctx, args) {
        ctx.table('objects').upsert({ id: args.id, type: 'doomed', n: 1, attributes: {} });
        throw new MemoryError('invalid_argument', 'failing on purpose after a write');
      },
    }),
  ],
};

export const testCaller = { tenant: 'test', subject: 'tester' } as const;
